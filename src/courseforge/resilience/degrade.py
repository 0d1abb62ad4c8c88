"""What a call does when every model of its chain failed on a flaky (not down) provider.

Waiting out breaker cooldowns stalls a course on a provider that still answers most calls;
sending again, with backoff, to the model of the chain that still succeeds most costs seconds.
`engine/calls.py` asks `should_force` after a round of its chain in which every model failed;
when it says yes it sends the call once more to `best_model` (at once, then after a backoff),
tagged `FORCE_TAG` so a flaky open breaker lets it through (`resilience/breaker.py`). A chain
with any model judged down keeps the seed rule: wait for the soonest probe.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Final

from ..errors import CircuitOpen, ProviderError
from ..providers.base import ChatModel, ChatRequest
from .breaker import FORCE_TAG
from .retry import is_transient, retry_delay_s

__all__ = ["DEGRADED_ROUNDS", "best_model", "degraded_delay_s", "forced", "should_force"]

#: Forced sends to the best model after the chain failed, before the call gives up.
DEGRADED_ROUNDS: Final = 3


def should_force(errors: Sequence[ProviderError]) -> bool:
    """Every model failed transiently or was skipped by a flaky breaker, at least one of them
    skipped (plain transient failures already had their retries), and none is down."""
    skipped = [e for e in errors if isinstance(e, CircuitOpen)]
    if not skipped or any(e.down for e in skipped):
        return False
    return all(isinstance(e, CircuitOpen) or is_transient(e) for e in errors)


def best_model(chain: Sequence[ChatModel], success_rate: Callable[[str], float]) -> ChatModel:
    """The chain's model whose recent calls succeeded most (the earlier one on a tie)."""
    return max(enumerate(chain), key=lambda im: (success_rate(im[1].model_id), -im[0]))[1]


def degraded_delay_s(round_no: int, key: str) -> float:
    """Seconds before forced send number `round_no` (1 for the first). The first goes at once:
    the models were skipped, not tried, and the forced send's own retries back off inside it.
    Later ones wait a full-jitter backoff drawn from `key` (the call's step key): calls that
    failed together spread apart, and a Temporal workflow replays the same wait."""
    if round_no <= 1:
        return 0.0
    return retry_delay_s(round_no - 1, None, random.Random(f"{key}:{round_no}"))


def forced(request: ChatRequest) -> ChatRequest:
    """`request`, tagged to pass a flaky open breaker."""
    return replace(request, tags={**request.tags, FORCE_TAG: "1"})
