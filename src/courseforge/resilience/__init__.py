"""Retries, circuit breakers, rate and concurrency limits, timeouts: ChatModels around ChatModels.

The engine stacks them per model, outermost first::

    StructuredOutputModel(RetryingModel(BreakingModel(LimitedModel(provider))))

so every answer's content is checked once, a retry goes back through the breaker (which may
refuse it), waits for rate capacity and a slot, and gets a fresh per-attempt timeout. A tier's
fallbacks are other models' stacks; the engine walks that chain itself, because each model
tried must be reserved and billed on the course's ledger (`engine.calls`). Nothing here knows
the ledger. Every wrapper keeps the inner `model_id`.
"""

from ._constants import (
    BREAKER_COOLDOWN_S,
    BREAKER_DOWN_MIN_CALLS,
    BREAKER_DOWN_RATE,
    BREAKER_FAILURE_THRESHOLD,
    BREAKER_FLAKY_COOLDOWN_S,
    BREAKER_HALF_OPEN_PROBES,
    DEFAULT_MAX_RETRIES,
    INITIAL_RETRY_DELAY_S,
    MAX_RETRY_AFTER_S,
    MAX_RETRY_DELAY_S,
)
from .breaker import (
    FORCE_TAG,
    BreakerPolicy,
    BreakerRegistry,
    BreakerSnapshot,
    BreakingModel,
    CircuitBreaker,
    Health,
    Permit,
    counts_as_outage,
)
from .clock import Clock, FakeClock, SystemClock, is_testing, set_testing
from .content import check_content
from .hooks import (
    BreakerState,
    BreakerTransition,
    CallRecorded,
    CountingHooks,
    EventCounts,
    FallbackTaken,
    FaultObserved,
    Hooks,
    OutputModeChanged,
    RateLimitWait,
    RecordingHooks,
    ResilienceEvent,
    RetryScheduled,
    ScopedHooks,
    fan_out,
    fault_kind,
    log_event,
    no_hooks,
)
from .limits import LimitedModel, Limiter, RateLimiter, estimate_request_tokens
from .redis_limits import RedisRateLimiter
from .retry import RetryingModel, RetryPredicate, is_transient, retry_delay_s
from .structured import SCHEMA_MISSES_TO_DOWNGRADE, StructuredOutputModel, weaker_mode

__all__ = [
    "BREAKER_COOLDOWN_S",
    "BREAKER_DOWN_MIN_CALLS",
    "BREAKER_DOWN_RATE",
    "BREAKER_FAILURE_THRESHOLD",
    "BREAKER_FLAKY_COOLDOWN_S",
    "BREAKER_HALF_OPEN_PROBES",
    "DEFAULT_MAX_RETRIES",
    "FORCE_TAG",
    "INITIAL_RETRY_DELAY_S",
    "MAX_RETRY_AFTER_S",
    "MAX_RETRY_DELAY_S",
    "SCHEMA_MISSES_TO_DOWNGRADE",
    "BreakerPolicy",
    "BreakerRegistry",
    "BreakerSnapshot",
    "BreakerState",
    "BreakerTransition",
    "BreakingModel",
    "CallRecorded",
    "CircuitBreaker",
    "Clock",
    "CountingHooks",
    "EventCounts",
    "FakeClock",
    "FallbackTaken",
    "FaultObserved",
    "Health",
    "Hooks",
    "LimitedModel",
    "Limiter",
    "OutputModeChanged",
    "Permit",
    "RateLimitWait",
    "RateLimiter",
    "RecordingHooks",
    "RedisRateLimiter",
    "ResilienceEvent",
    "RetryPredicate",
    "RetryScheduled",
    "RetryingModel",
    "ScopedHooks",
    "StructuredOutputModel",
    "SystemClock",
    "check_content",
    "counts_as_outage",
    "estimate_request_tokens",
    "fan_out",
    "fault_kind",
    "is_testing",
    "is_transient",
    "log_event",
    "no_hooks",
    "retry_delay_s",
    "set_testing",
    "weaker_mode",
]
