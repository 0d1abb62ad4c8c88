"""The service's job slots: a fixed number, or a number that follows the event loop's lag."""

from __future__ import annotations

import asyncio

import pytest

from courseforge.service.admission import START, AdaptiveSlots


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def _hold(slots: AdaptiveSlots, entered: list[int], release: asyncio.Event, n: int) -> None:
    async with slots:
        entered.append(n)
        await release.wait()


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_without_a_target_the_slots_are_a_fixed_semaphore() -> None:
    async def main() -> None:
        slots = AdaptiveSlots(3)
        entered: list[int] = []
        release = asyncio.Event()
        tasks = [asyncio.create_task(_hold(slots, entered, release, n)) for n in range(5)]
        await _settle()
        assert entered == [0, 1, 2] and slots.waiting == 2
        slots.observe(5.0)  # no target: the lag changes nothing
        assert slots.limit == 3
        release.set()
        await asyncio.gather(*tasks)
        assert entered == [0, 1, 2, 3, 4] and slots.active == 0

    asyncio.run(main())


def test_a_late_loop_cuts_the_limit_once_per_cooldown_and_a_quiet_one_raises_it() -> None:
    async def main() -> None:
        clock = Clock()
        slots = AdaptiveSlots(100, target_s=0.05, cooldown_s=1.0, clock=clock)
        assert slots.limit == START
        entered: list[int] = []
        release = asyncio.Event()
        tasks = [asyncio.create_task(_hold(slots, entered, release, n)) for n in range(20)]
        await _settle()
        assert len(entered) == START and slots.waiting == 20 - START
        for _ in range(6):  # a quiet loop with jobs waiting: one more at a time
            slots.observe(0.001)
        await _settle()
        assert slots.limit == START + 6 and len(entered) == START + 6
        slots.observe(0.03)  # under the target but not under half of it: no change
        assert slots.limit == START + 6
        slots.observe(0.3)  # one late probe (a collection's pause): no change either
        assert slots.limit == START + 6
        slots.observe(0.3)  # the second in a row: the loop is busy
        assert slots.limit == int((START + 6) * 0.75)
        slots.observe(0.3)  # within the cooldown: the running jobs still weigh on the loop
        assert slots.limit == int((START + 6) * 0.75)
        clock.now += 1.0
        slots.observe(0.3)
        assert slots.limit == int(int((START + 6) * 0.75) * 0.75)
        assert slots.low == START and slots.high == START + 6
        # After a cut, a quiet loop raises the limit once per cooldown, not at every probe.
        lowered = slots.limit
        for _ in range(5):
            slots.observe(0.0)
        assert slots.limit == lowered + 1
        clock.now += 1.0
        slots.observe(0.0)
        assert slots.limit == lowered + 2
        # Running jobs are not stopped; none starts until they fall under the limit.
        assert slots.active == START + 6 > slots.limit
        release.set()
        await asyncio.gather(*tasks)
        assert sorted(entered) == list(range(20)) and slots.active == 0

    asyncio.run(main())


def test_the_limit_stays_between_one_and_the_maximum() -> None:
    async def main() -> None:
        clock = Clock()
        slots = AdaptiveSlots(5, target_s=0.05, clock=clock)
        release = asyncio.Event()
        entered: list[int] = []
        tasks = [asyncio.create_task(_hold(slots, entered, release, n)) for n in range(8)]
        await _settle()
        for _ in range(10):
            slots.observe(0.0)
        assert slots.limit == 5
        for _ in range(10):
            clock.now += 2
            slots.observe(9.0)
        assert slots.limit == 1
        release.set()
        await asyncio.gather(*tasks)

    asyncio.run(main())


def test_a_quiet_loop_without_waiting_jobs_does_not_raise_the_limit() -> None:
    slots = AdaptiveSlots(50, target_s=0.05)
    for _ in range(10):
        slots.observe(0.0)
    assert slots.limit == START


def test_a_waiter_cancelled_after_it_was_woken_passes_its_slot_on() -> None:
    async def main() -> None:
        slots = AdaptiveSlots(1)
        await slots.__aenter__()
        release = asyncio.Event()
        release.set()
        entered: list[int] = []
        second = asyncio.create_task(_hold(slots, entered, release, 1))
        third = asyncio.create_task(_hold(slots, entered, release, 2))
        await _settle()
        assert slots.waiting == 2
        await slots.__aexit__(None, None, None)  # wakes the second, which is cancelled before it runs
        second.cancel()
        await asyncio.wait_for(asyncio.gather(second, third, return_exceptions=True), 10)
        assert second.cancelled() and entered == [2] and slots.active == 0

    asyncio.run(main())


@pytest.mark.parametrize(("maximum", "target"), [(0, None), (3, 0.0)])
def test_bad_arguments_are_refused(maximum: int, target: float | None) -> None:
    with pytest.raises(ValueError):
        AdaptiveSlots(maximum, target_s=target)
