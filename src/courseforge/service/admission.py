"""How many jobs a service process generates at once: up to `service.max_concurrent_jobs`, and
fewer while its event loop runs late.

One process's courses share one event loop (and one interpreter lock). Past the number of
courses that keeps it busy, another course in flight adds no throughput, only delay: every
request, every provider socket and every course's next step waits longer for its turn. So the
slots adapt, as a TCP sender's window does, to a measured signal: the service's loop-lag probe
(`metrics.watch_loop_lag`, every 0.1 s) reports how late the loop woke it, and

- a lag over `service.loop_lag_target_s` at two probes in a row cuts the limit to three
  quarters, at most once per `cooldown_s` (the jobs already running keep loading the loop for
  a while). One late probe alone is not load: a full garbage collection pauses the loop once
  (≈ 0.07 s with a hundred courses' objects), a busy loop is late probe after probe;
- a lag under half the target, while every slot is taken and jobs wait, raises it by one: at
  every such probe until the first cut (a quick start), then at most once per `cooldown_s`.

Jobs already running are never stopped: a lower limit only holds back the next start. With no
target (`None`) the slots are a fixed semaphore of `maximum`, as before.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from types import TracebackType

__all__ = ["AdaptiveSlots"]

#: The limit's first value when it adapts: the first courses start at once, the rest as the
#: loop shows room for them.
START = 4
#: Factor applied to the limit when the loop runs late.
DECREASE = 0.75


class AdaptiveSlots:
    """`async with slots:` holds one of `limit` slots, first come first served; `observe(lag_s)`
    moves `limit`."""

    def __init__(
        self,
        maximum: int,
        *,
        target_s: float | None = None,
        cooldown_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if maximum < 1:
            raise ValueError("maximum must be >= 1")
        if target_s is not None and target_s <= 0:
            raise ValueError("target_s must be > 0")
        self.maximum = maximum
        self.target_s = target_s
        self.cooldown_s = cooldown_s
        self._clock = clock
        self.limit = maximum if target_s is None else min(maximum, START)
        #: Lowest and highest limit so far (what the adaptation settled between).
        self.low = self.high = self.limit
        self.active = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._cut_at = self._raised_at = -float("inf")
        self._late = 0  # probes over the target in a row

    @property
    def waiting(self) -> int:
        return sum(1 for w in self._waiters if not w.done())

    async def __aenter__(self) -> None:
        if self.active < self.limit and not self.waiting:
            self.active += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter  # `_admit` counted this holder in `active` when it woke it
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release()  # woken and cancelled at once: pass the slot on
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._release()

    def _release(self) -> None:
        self.active -= 1
        self._admit()

    def _admit(self) -> None:
        while self._waiters and self.active < self.limit:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.active += 1
                waiter.set_result(None)

    def observe(self, lag_s: float) -> None:
        """One measurement of how late the event loop ran (seconds)."""
        if self.target_s is None:
            return
        now = self._clock()
        self._late = self._late + 1 if lag_s > self.target_s else 0
        if self._late:
            if self._late >= 2 and now - self._cut_at >= self.cooldown_s and self.limit > 1:
                self.limit = max(1, int(self.limit * DECREASE))
                self._cut_at = now
        elif lag_s < self.target_s / 2 and self.waiting and self.maximum > self.limit <= self.active:
            never_cut = self._cut_at == -float("inf")
            if never_cut or now - self._raised_at >= self.cooldown_s:
                self.limit += 1
                self._raised_at = now
                self._admit()
        self.low, self.high = min(self.low, self.limit), max(self.high, self.limit)
