"""Retries, circuit breakers, rate and concurrency limits, timeouts: ChatModels around ChatModels.

The engine stacks them, outermost first::

    RetryingModel(BreakingModel(RateLimitedModel(ConcurrencyLimitedModel(TimeoutModel(provider)))))

so a retry goes back through the breaker (which may refuse it), waits for rate capacity and a
slot, and gets a fresh per-attempt timeout. Every wrapper keeps the inner `model_id`.
"""

from ._constants import (
    BREAKER_COOLDOWN_S,
    BREAKER_FAILURE_THRESHOLD,
    DEFAULT_MAX_RETRIES,
    INITIAL_RETRY_DELAY_S,
    MAX_RETRY_AFTER_S,
    MAX_RETRY_DELAY_S,
)
from .breaker import BreakerRegistry, BreakerSnapshot, BreakingModel, CircuitBreaker, Permit, counts_as_outage
from .clock import Clock, FakeClock, SystemClock, is_testing, set_testing
from .hooks import (
    BreakerState,
    BreakerTransition,
    Hooks,
    RateLimitWait,
    RecordingHooks,
    ResilienceEvent,
    RetryScheduled,
    fault_kind,
    no_hooks,
)
from .limits import (
    ConcurrencyLimitedModel,
    Limiter,
    RateLimitedModel,
    RateLimiter,
    TimeoutModel,
    estimate_request_tokens,
)
from .retry import RetryingModel, RetryPredicate, is_transient, retry_delay_s

__all__ = [
    "BREAKER_COOLDOWN_S",
    "BREAKER_FAILURE_THRESHOLD",
    "DEFAULT_MAX_RETRIES",
    "INITIAL_RETRY_DELAY_S",
    "MAX_RETRY_AFTER_S",
    "MAX_RETRY_DELAY_S",
    "BreakerRegistry",
    "BreakerSnapshot",
    "BreakerState",
    "BreakerTransition",
    "BreakingModel",
    "CircuitBreaker",
    "Clock",
    "ConcurrencyLimitedModel",
    "FakeClock",
    "Hooks",
    "Limiter",
    "Permit",
    "RateLimitWait",
    "RateLimitedModel",
    "RateLimiter",
    "RecordingHooks",
    "ResilienceEvent",
    "RetryPredicate",
    "RetryScheduled",
    "RetryingModel",
    "SystemClock",
    "TimeoutModel",
    "counts_as_outage",
    "estimate_request_tokens",
    "fault_kind",
    "is_testing",
    "is_transient",
    "no_hooks",
    "retry_delay_s",
    "set_testing",
]
