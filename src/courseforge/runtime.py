"""The in-process `Effects`: every model call reserves budget, goes through the model's
resilience stack, is priced and recorded on the ledger. Embeddings go through the cached
embedder. Used by the engine; the distributed engine swaps this one class."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from .config import Settings
from .domain import CallRecord
from .errors import BudgetExceeded, ProviderError
from .ledger import Ledger, estimate_input_tokens, price_of, worst_case_cost
from .providers import ChatModel, Embedder
from .providers.effects import CallResult, CallSpec

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
        model = self._settings.models[model_id]
        request = spec.request
        estimate = worst_case_cost(model, estimate_input_tokens(request.messages), request.max_tokens)
        started = self.now_ms()
        base = dict(
            phase=spec.phase,
            task=spec.task,
            model=model_id,
            tier=spec.tier,
            attempt=spec.attempt,
            started_ms=round(started, 1),
        )
        try:
            reservation = self._ledger.reserve(estimate)
        except BudgetExceeded as exc:
            self._ledger.record(
                CallRecord(**base, outcome="budget_blocked", reason=str(exc), cost_source="none")
            )
            raise
        try:
            response = await self._models[model_id].complete(request)
        except ProviderError as exc:
            self._ledger.settle(
                reservation,
                CallRecord(
                    **base,
                    outcome="error",
                    reason=f"{type(exc).__name__}: {exc}"[:500],
                    latency_ms=round(self.now_ms() - started, 1),
                    cost_source="none",
                ),
            )
            raise
        except BaseException:
            self._ledger.release(reservation)
            raise
        cost, source = price_of(model, response.usage)
        record = CallRecord(
            **base,
            input_tokens=response.usage.input_tokens,
            output_tokens=response.usage.output_tokens,
            cached_tokens=response.usage.cached_tokens,
            cost_usd=cost,
            latency_ms=round(self.now_ms() - started, 1),
            outcome="ok",
            cost_source=source,
        )
        self._ledger.settle(reservation, record)
        return CallResult(response, record)
