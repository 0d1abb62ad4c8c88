"""Retrying transient provider failures on the same model, respecting the server.

The delay before retry n is the server's Retry-After when it sent a sane one (0 to
`MAX_RETRY_AFTER_S`), else exponential backoff with full jitter: uniform in
[0, min(MAX_RETRY_DELAY_S, INITIAL_RETRY_DELAY_S * 2**(n-1))]. Full jitter spreads the retries
of many parallel lessons that failed together, so they do not hit the provider in one burst.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

from ..errors import BadResponse, CircuitOpen, ProviderError, RateLimited
from ..providers.base import ChatModel, ChatRequest, ChatResponse
from ._constants import DEFAULT_MAX_RETRIES, INITIAL_RETRY_DELAY_S, MAX_RETRY_AFTER_S, MAX_RETRY_DELAY_S
from ._wrapper import WrapperModel
from .clock import Clock, SystemClock
from .hooks import FaultObserved, Hooks, RetryScheduled, fault_kind, no_hooks

__all__ = ["RetryPredicate", "RetryingModel", "is_transient", "retry_delay_s"]

RetryPredicate = Callable[[ProviderError], bool]

#: Doubling stops here; the cap is reached long before, this only keeps the float finite.
_MAX_EXPONENT = 64


def is_transient(error: ProviderError) -> bool:
    """Worth sending again to the same model soon: 408/409/429/5xx, timeouts, lost connections.

    Two `retryable` errors are left out on purpose. `BadResponse`: bad content is the cascade's
    job (a repaired prompt or another model), not a transport retry's. `CircuitOpen`: the breaker
    already says the model is out for up to a minute; the cascade can fall back right away.
    """
    return error.retryable and not isinstance(error, BadResponse | CircuitOpen)


def retry_delay_s(
    attempt: int,
    retry_after_s: float | None,
    rng: random.Random,
    *,
    initial_delay_s: float = INITIAL_RETRY_DELAY_S,
    max_delay_s: float = MAX_RETRY_DELAY_S,
    max_retry_after_s: float = MAX_RETRY_AFTER_S,
) -> float:
    """Seconds to wait before retry number `attempt` (1 for the first retry)."""
    if attempt < 1:
        raise ValueError(f"attempt counts retries from 1, got {attempt}")
    if retry_after_s is not None and math.isfinite(retry_after_s) and 0 <= retry_after_s <= max_retry_after_s:
        return float(retry_after_s)
    ceiling = min(max_delay_s, initial_delay_s * 2.0 ** min(attempt - 1, _MAX_EXPONENT))
    return rng.uniform(0.0, ceiling)


class RetryingModel(WrapperModel):
    """Sends a request again after transient failures, up to `max_retries` times.

    When retries run out, the last error is raised unchanged, so callers see the real cause.
    Errors that are not `ProviderError`s (bugs, cancellation) are never retried.
    """

    def __init__(
        self,
        inner: ChatModel,
        *,
        max_retries: int = DEFAULT_MAX_RETRIES,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        hooks: Hooks = no_hooks,
        retry_on: RetryPredicate = is_transient,
        initial_delay_s: float = INITIAL_RETRY_DELAY_S,
        max_delay_s: float = MAX_RETRY_DELAY_S,
        max_retry_after_s: float = MAX_RETRY_AFTER_S,
    ) -> None:
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        super().__init__(inner)
        self.max_retries = max_retries
        self._clock: Clock = clock or SystemClock()
        self._rng = rng or random.Random()
        self._hooks = hooks
        self._retry_on = retry_on
        self._initial_delay_s = initial_delay_s
        self._max_delay_s = max_delay_s
        self._max_retry_after_s = max_retry_after_s

    async def complete(self, request: ChatRequest) -> ChatResponse:
        # A task's priority may set its own retry budget (a critical task gets more retries).
        limit = int(request.tags.get("max_retries", self.max_retries))
        attempt = 0
        while True:
            try:
                return await self.inner.complete(request)
            except ProviderError as error:
                self._hooks(FaultObserved(self.model_id, fault_kind(error)))
                if attempt >= limit or not self._retry_on(error):
                    raise
                attempt += 1
                delay = retry_delay_s(
                    attempt,
                    error.retry_after_s if isinstance(error, RateLimited) else None,
                    self._rng,
                    initial_delay_s=self._initial_delay_s,
                    max_delay_s=self._max_delay_s,
                    max_retry_after_s=self._max_retry_after_s,
                )
                self._hooks(RetryScheduled(self.model_id, attempt, delay, fault_kind(error)))
            await self._clock.sleep(delay)
