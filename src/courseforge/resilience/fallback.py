"""Fallback chains: a model that tries the next model when one fails — on a provider error
*or* on a bad answer (empty, unparseable, schema-invalid: `StructuredOutputModel` raises those).

Each model tried is metered separately (`metering.metered_complete`), so a rejected answer's
tokens and cost stay on the ledger as a `rejected` call and the budget is reserved per try.
If the primary's budget reservation fails, the chain stops at once (nothing was sent); a
fallback that does not fit the budget is skipped. When every model fails, the last error is
raised (so the cascade sees its real class) with a note naming the whole chain.

When every model of the chain was skipped by an open breaker (nothing was sent), the call waits
for the soonest probe — at most `max_open_wait_s`, for `OPEN_CHAIN_ROUNDS` rounds — instead of
failing at once: without it, a moment when every breaker is open fails every task that starts
in it, faster than any cooldown can end (a failure storm the chaos benchmark showed).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..errors import BudgetExceeded, CircuitOpen, ProviderError
from ..providers.base import ChatModel, ChatRequest, ChatResponse
from .clock import Clock, SystemClock
from .hooks import FallbackTaken, Hooks, fault_kind, no_hooks
from .metering import metered_complete

__all__ = ["OPEN_CHAIN_ROUNDS", "FallbackModel"]

#: Times a call whose whole chain is open waits for a probe before it gives up.
OPEN_CHAIN_ROUNDS = 2
#: Share of `max_open_wait_s` waited when a breaker is half-open with its probe in flight.
_PROBE_WAIT_SHARE = 0.05


def _any_provider_error(error: ProviderError) -> bool:
    return True


class FallbackModel(ChatModel):
    """Tries `models` in order; `model_id` is the first one's. Set `fall_back_on` to narrow
    which errors move on (default: every `ProviderError`)."""

    #: Reports each model it tries to the current meter itself (see `metering`).
    meters_calls = True

    def __init__(
        self,
        models: Sequence[ChatModel],
        *,
        hooks: Hooks = no_hooks,
        fall_back_on: Callable[[ProviderError], bool] = _any_provider_error,
        max_open_wait_s: float = 0.0,
        clock: Clock | None = None,
    ) -> None:
        if not models:
            raise ValueError("FallbackModel needs at least one model")
        self.models = list(models)
        self.model_id = self.models[0].model_id
        self._hooks = hooks
        self._fall_back_on = fall_back_on
        self._max_open_wait_s = max_open_wait_s
        self._clock: Clock = clock or SystemClock()

    @property
    def chain(self) -> list[str]:
        return [m.model_id for m in self.models]

    async def complete(self, request: ChatRequest) -> ChatResponse:
        rounds = 0
        while True:
            try:
                return await self._try_chain(request)
            except CircuitOpen as exc:
                skipped = getattr(exc, "chain_reopens_in_s", None)
                if skipped is None or rounds >= OPEN_CHAIN_ROUNDS or skipped > self._max_open_wait_s:
                    raise
                rounds += 1
                await self._clock.sleep(skipped or self._max_open_wait_s * _PROBE_WAIT_SHARE)

    async def _try_chain(self, request: ChatRequest) -> ChatResponse:
        last: ProviderError | None = None
        all_open: list[float] = []
        blocked: BudgetExceeded | None = None
        for i, model in enumerate(self.models):
            if i > 0 and last is not None:
                self._hooks(FallbackTaken(self.models[i - 1].model_id, model.model_id, fault_kind(last)))
            try:
                return await metered_complete(model, request)
            except BudgetExceeded as exc:
                if i == 0:
                    raise
                blocked = exc
            except ProviderError as exc:
                last = exc
                if isinstance(exc, CircuitOpen) and len(all_open) == i:
                    all_open.append(exc.reopens_in_s)
                if not self._fall_back_on(exc):
                    raise
        if last is None:
            assert blocked is not None
            raise blocked
        if len(self.models) > 1:
            last.add_note(f"fallback chain {' -> '.join(self.chain)}: every model failed")
        if len(all_open) == len(self.models):
            last.chain_reopens_in_s = min(all_open)  # type: ignore[attr-defined]
        raise last

    async def aclose(self) -> None:
        for model in self.models:
            await model.aclose()
