"""Time, injected: the `Clock` protocol, the real `SystemClock` and the instant `FakeClock`.

Every wrapper that waits takes a clock, so tests advance fake time instead of sleeping. For
suites that build wrappers without a clock, `set_testing(True)` makes `SystemClock.sleep`
return at once (like stamina's testing switch); an injected `FakeClock` is still preferred
because it also records what would have been waited.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

__all__ = ["Clock", "FakeClock", "SystemClock", "is_testing", "set_testing"]

_testing = False


def set_testing(testing: bool) -> None:
    """Turn real waiting off (True) or back on (False) for every `SystemClock`."""
    global _testing
    _testing = testing


def is_testing() -> bool:
    return _testing


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards; only differences mean anything."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` (negative counts as zero)."""
        ...


class SystemClock:
    """The event loop's real time; sleeps only yield when `set_testing(True)` is on."""

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0.0 if _testing else max(0.0, seconds))


class FakeClock:
    """Time that moves only when told: `sleep` advances it at once and records the request.

    Sleeps still yield to the event loop, so concurrent tasks interleave as they would for real.
    Concurrent sleeps add up rather than overlap, which is fine for the sequential waits the
    wrappers do (retry backoff, a rate limiter that serves one waiter at a time).
    """

    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        #: Every sleep asked for, in order.
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        seconds = max(0.0, seconds)
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)

    def advance(self, seconds: float) -> None:
        """Move time forward without anyone sleeping (e.g. to end a breaker's cooldown)."""
        if seconds < 0:
            raise ValueError("a monotonic clock cannot go backwards")
        self.now += seconds
