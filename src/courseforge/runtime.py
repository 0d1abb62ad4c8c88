"""The in-process `Effects`: every model call reserves budget, goes through the model's
resilience stack, is priced and recorded on the ledger. Embeddings go through the cached
embedder. Used by the engine; the distributed engine swaps this one class.

A call may reach several models (a fallback chain); the stack reports each one it tries to
this module's meter (`resilience.metering`), so each is reserved, priced and recorded on its
own: a fallen-back attempt is a `rejected` (billed, unusable) or `error` (not billed) record,
a model skipped by its open breaker a `skipped` one."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .config import ModelSettings, Settings
from .domain import CallRecord
from .errors import BudgetExceeded, CircuitOpen, ProviderError
from .ledger import Ledger, Reservation, estimate_input_tokens, price_of, worst_case_cost
from .providers import ChatModel, ChatRequest, ChatResponse, Embedder, Usage
from .providers.effects import CallResult, CallSpec
from .resilience import call_metered

__all__ = ["InProcessEffects"]


class InProcessEffects:
    def __init__(
        self,
        settings: Settings,
        models: Mapping[str, ChatModel],
        ledger: Ledger,
        embedder: Embedder,
    ) -> None:
        self._settings = settings
        self._models = models
        self._ledger = ledger
        self._embedder = embedder
        self._t0 = time.perf_counter()

    def now_ms(self) -> float:
        return (time.perf_counter() - self._t0) * 1000

    def budget_fraction(self) -> float:
        return self._ledger.fraction_used

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return await self._embedder.embed(list(texts))

    async def call(self, spec: CallSpec) -> CallResult:
        model_id = self._settings.routing.tiers[spec.tier]
        meter = _LedgerMeter(self, spec, model_id)
        response = await call_metered(self._models[model_id], spec.request, meter)
        assert meter.accepted is not None, "a metered call returned without being settled"
        return CallResult(response, meter.accepted)


@dataclass(slots=True)
class _Ticket:
    model_id: str
    model: ModelSettings
    reservation: Reservation
    started_ms: float
    base: dict[str, Any]


class _LedgerMeter:
    """One logical call's meter: each model actually tried (the tier's model, then its
    fallbacks) reserves its own worst case and leaves its own record, so a fallen-back
    attempt's tokens and cost stay on the bill. The accepted record is handed back to the
    pipeline, which may still mark it rejected (a gate refused the answer)."""

    def __init__(self, effects: InProcessEffects, spec: CallSpec, primary: str) -> None:
        self._effects = effects
        self._spec = spec
        self._primary = primary
        self.accepted: CallRecord | None = None

    def begin(self, model_id: str, request: ChatRequest) -> object:
        effects, spec = self._effects, self._spec
        model = effects._settings.models[model_id]
        estimate = worst_case_cost(model, estimate_input_tokens(request.messages), request.max_tokens)
        started = effects.now_ms()
        base: dict[str, Any] = dict(
            phase=spec.phase,
            task=spec.task,
            model=model_id,
            tier=spec.tier,
            attempt=spec.attempt,
            started_ms=round(started, 1),
        )
        try:
            reservation = effects._ledger.reserve(estimate)
        except BudgetExceeded as exc:
            effects._ledger.record(
                CallRecord(**base, outcome="budget_blocked", reason=str(exc), cost_source="none")
            )
            raise
        return _Ticket(model_id, model, reservation, started, base)

    def end(
        self, ticket: object, *, response: ChatResponse | None = None, error: BaseException | None = None
    ) -> None:
        assert isinstance(ticket, _Ticket)
        ledger = self._effects._ledger
        latency_ms = round(self._effects.now_ms() - ticket.started_ms, 1)
        fallback = ticket.model_id != self._primary
        if response is not None:
            cost, source = price_of(ticket.model, response.usage)
            record = CallRecord(
                **ticket.base,
                input_tokens=response.usage.input_tokens,
                output_tokens=response.usage.output_tokens,
                cached_tokens=response.usage.cached_tokens,
                cost_usd=cost,
                latency_ms=latency_ms,
                outcome="ok",
                reason=f"fallback for {self._primary}" if fallback else "",
                cost_source=source,
            )
            self.accepted = ledger.settle(ticket.reservation, record)
        elif isinstance(error, CircuitOpen):
            ledger.release(ticket.reservation)
            ledger.record(
                CallRecord(
                    **ticket.base, outcome="skipped", reason=f"CircuitOpen: {error}"[:500], cost_source="none"
                )
            )
        elif isinstance(error, ProviderError):
            usage = getattr(error, "usage", None)
            reason = f"{type(error).__name__}: {error}"[:500]
            if isinstance(usage, Usage):
                # Answered and billed, but unusable (empty, cut off, not JSON, schema-invalid).
                cost, source = price_of(ticket.model, usage)
                record = CallRecord(
                    **ticket.base,
                    input_tokens=usage.input_tokens,
                    output_tokens=usage.output_tokens,
                    cached_tokens=usage.cached_tokens,
                    cost_usd=cost,
                    latency_ms=latency_ms,
                    outcome="rejected",
                    reason=reason,
                    cost_source=source,
                )
            else:
                record = CallRecord(
                    **ticket.base, outcome="error", reason=reason, latency_ms=latency_ms, cost_source="none"
                )
            ledger.settle(ticket.reservation, record)
        else:  # cancelled, or a bug of ours: nothing was billed that we know of
            ledger.release(ticket.reservation)
