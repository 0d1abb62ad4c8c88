"""Hedged requests: a second identical request when the first is slow; the first answer wins.

`LatencyTracker` keeps each model's recent answered latencies (shared by an engine's courses);
`hedge_delay_s` is the configured quantile of them (p95 by default), bounded, or the initial
delay until the model has enough samples. `race(first, second, delay_s)` starts `first`, and
`second` only if `first` has not finished after `delay_s`; the first to succeed wins and the
other is cancelled (and awaited, so its own cleanup runs: `engine/calls.py` puts a cancelled
leg's cost, if any, on the ledger). A leg that fails leaves the race to the other. Nothing here
knows the ledger; the legs are whatever the caller passes.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ..config import HedgingSettings

__all__ = ["LatencyTracker", "hedge_delay_s", "race"]

T = TypeVar("T")

#: Answered latencies kept per model.
_KEPT = 64


class LatencyTracker:
    """Recent answered latencies (seconds) per model id."""

    def __init__(self, kept: int = _KEPT) -> None:
        self._kept = kept
        self._seen: dict[str, deque[float]] = {}

    def observe(self, model_id: str, latency_s: float) -> None:
        self._seen.setdefault(model_id, deque(maxlen=self._kept)).append(latency_s)

    def samples(self, model_id: str) -> int:
        return len(self._seen.get(model_id, ()))

    def quantile(self, model_id: str, q: float) -> float | None:
        """The `q` quantile (nearest rank) of the model's kept latencies, None with none."""
        seen = sorted(self._seen.get(model_id, ()))
        if not seen:
            return None
        return seen[min(len(seen) - 1, max(0, math.ceil(q * len(seen)) - 1))]


def hedge_delay_s(tracker: LatencyTracker, model_id: str, settings: HedgingSettings) -> float:
    """Seconds to wait for the first request before sending the hedge."""
    observed = tracker.quantile(model_id, settings.quantile)
    if observed is None or tracker.samples(model_id) < settings.min_samples:
        observed = settings.initial_delay_s
    return min(settings.max_delay_s, max(settings.min_delay_s, observed))


async def race(
    first: Callable[[], Awaitable[T]],
    second: Callable[[], Awaitable[T]],
    delay_s: float,
    *,
    on_hedge: Callable[[], None] | None = None,
) -> T:
    """`first()`, hedged by `second()` after `delay_s`; the first success wins, the loser is
    cancelled and awaited. When both fail, the later error is raised."""
    legs = [asyncio.ensure_future(first())]
    try:
        done, _ = await asyncio.wait(legs, timeout=delay_s)
        if done:
            return legs[0].result()
        if on_hedge is not None:
            on_hedge()
        legs.append(asyncio.ensure_future(second()))
        pending = set(legs)
        error: BaseException | None = None
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for leg in done:
                if leg.exception() is None:
                    return leg.result()
                error = leg.exception()
        assert error is not None
        raise error
    finally:
        losers = [leg for leg in legs if not leg.done()]
        for leg in losers:
            leg.cancel()
        # Awaited so each loser's cleanup (its ledger record) runs before the winner is used.
        await asyncio.gather(*losers, return_exceptions=True)
