"""Retries, circuit breakers, rate and concurrency limits, timeouts: ChatModels around ChatModels.

The engine stacks them, outermost first::

    FallbackModel([stack(model), stack(fallback 1), ...])           per tier model (`fallbacks:`)
    stack(m) = StructuredOutputModel(RetryingModel(BreakingModel(
                   RateLimitedModel(ConcurrencyLimitedModel(TimeoutModel(provider))))))

so a retry goes back through the breaker (which may refuse it), waits for rate capacity and a
slot, and gets a fresh per-attempt timeout; a bad answer or an exhausted model moves the chain
to the next model, each try metered on the course's ledger (`metering`). Every wrapper keeps
the inner `model_id`.
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
from .content import check_content
from .fallback import FallbackModel
from .hooks import (
    BreakerState,
    BreakerTransition,
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
from .limits import (
    ConcurrencyLimitedModel,
    Limiter,
    RateLimitedModel,
    RateLimiter,
    TimeoutModel,
    estimate_request_tokens,
)
from .metering import Meter, call_metered, metered_complete, use_meter
from .redis_limits import RedisRateLimiter
from .retry import RetryingModel, RetryPredicate, is_transient, retry_delay_s
from .structured import SCHEMA_MISSES_TO_DOWNGRADE, StructuredOutputModel, weaker_mode

__all__ = [
    "BREAKER_COOLDOWN_S",
    "BREAKER_FAILURE_THRESHOLD",
    "DEFAULT_MAX_RETRIES",
    "INITIAL_RETRY_DELAY_S",
    "MAX_RETRY_AFTER_S",
    "MAX_RETRY_DELAY_S",
    "SCHEMA_MISSES_TO_DOWNGRADE",
    "BreakerRegistry",
    "BreakerSnapshot",
    "BreakerState",
    "BreakerTransition",
    "BreakingModel",
    "CircuitBreaker",
    "Clock",
    "ConcurrencyLimitedModel",
    "FakeClock",
    "FallbackModel",
    "FallbackTaken",
    "FaultObserved",
    "Hooks",
    "Limiter",
    "Meter",
    "OutputModeChanged",
    "Permit",
    "RateLimitWait",
    "RateLimitedModel",
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
    "TimeoutModel",
    "call_metered",
    "check_content",
    "counts_as_outage",
    "estimate_request_tokens",
    "fan_out",
    "fault_kind",
    "is_testing",
    "is_transient",
    "log_event",
    "metered_complete",
    "no_hooks",
    "retry_delay_s",
    "set_testing",
    "use_meter",
    "weaker_mode",
]
