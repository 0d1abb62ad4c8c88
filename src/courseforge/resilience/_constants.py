"""Named defaults of the resilience wrappers, in one place so a reader can see every knob.

The retry numbers follow openai-python's conventions; the breaker numbers are seed 001's
("after 3 consecutive failures from a provider, route to fallback for a 60-second cooldown").
"""

from __future__ import annotations

from typing import Final

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
BREAKER_FAILURE_THRESHOLD: Final = 3
#: Seconds a breaker stays open before it lets one probe call through.
BREAKER_COOLDOWN_S: Final = 60.0
