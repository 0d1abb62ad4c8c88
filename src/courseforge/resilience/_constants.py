"""Named defaults of the resilience wrappers, in one place so a reader can see every knob.

The retry numbers follow openai-python's conventions; the breaker numbers say: after 3
consecutive failures from a provider, route to the fallback for a 60-second cooldown.
The breaker defaults are the config's (`config.BreakerSettings`, the one place they are set);
here they are named for the wrappers built without a config.
"""

from __future__ import annotations

from typing import Final

from ..config import BreakerSettings

_BREAKER = BreakerSettings()

#: Ceiling of the first backoff delay; it doubles per retry (full jitter draws below it).
INITIAL_RETRY_DELAY_S: Final = 0.5
#: No backoff delay is drawn above this.
MAX_RETRY_DELAY_S: Final = 8.0
#: Retries after the first attempt (so three calls at most).
DEFAULT_MAX_RETRIES: Final = 2
#: A server's Retry-After above this is not honoured (backoff is used instead): waiting longer
#: than a minute for one model is worse than falling back to another.
MAX_RETRY_AFTER_S: Final = 60.0
#: Consecutive outage-like failures that open a model's breaker.
BREAKER_FAILURE_THRESHOLD: Final = _BREAKER.failure_threshold
#: Seconds a breaker stays open before it lets one probe call through.
BREAKER_COOLDOWN_S: Final = _BREAKER.cooldown_s
#: Outcomes (per model, per provider) in a breaker's sliding window, and its age limit (s).
BREAKER_WINDOW_CALLS: Final = _BREAKER.window_calls
BREAKER_WINDOW_S: Final = _BREAKER.window_s
#: A window failure rate at or above this (calls in flight counted as not failed), with at least
#: `BREAKER_DOWN_MIN_CALLS` outcomes in the window, means "down": the seed rule's full cooldown.
#: Below it the model is flaky. At 30 % random 5xx, 9 of 10 failures happen by chance about once
#: in 7,000 windows; 3 in a row about once in 37.
BREAKER_DOWN_RATE: Final = _BREAKER.down_rate
BREAKER_DOWN_MIN_CALLS: Final = _BREAKER.down_min_calls
#: First cooldown of a flaky model's breaker; it doubles each time it re-opens without having
#: closed in between, up to `BREAKER_COOLDOWN_S`.
BREAKER_FLAKY_COOLDOWN_S: Final = _BREAKER.flaky_cooldown_s
#: Calls let through at once while half-open (the first answer closes the breaker).
BREAKER_HALF_OPEN_PROBES: Final = _BREAKER.half_open_probes
#: Outcomes a provider's breaker needs in its window before it can judge the provider down.
PROVIDER_BREAKER_MIN_CALLS: Final = 10
