"""A run's progress flusher ends with the run, even when a store write swallows its cancellation."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from courseforge.jobs.progress import ProgressTracker, tracked_run
from courseforge.storage import Store


class SwallowingStore:
    """`update_job` never answers and, cancelled, returns instead of raising: what a database
    driver did under load in benchmarks/scale.py (the job's run then waited for ever)."""

    def __init__(self) -> None:
        self.writing = asyncio.Event()
        self.writes = 0

    async def update_job(self, job_id: str, **fields: Any) -> None:
        self.writes += 1
        self.writing.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            return


async def test_run_ends_when_a_store_write_swallows_the_flushers_cancellation() -> None:
    store = SwallowingStore()
    tracker = ProgressTracker()

    async def interrupted() -> None:
        return None

    async def run() -> None:
        async with tracked_run(
            cast(Store, store), "job-1", tracker, flush_interval_s=0.0, interrupted=interrupted
        ):
            tracker.dirty = True
            await store.writing.wait()  # the flusher is inside its write when the run ends

    task = asyncio.ensure_future(run())
    # Not wait_for: cancelling a stuck run on its timeout would end it (the run suppresses the
    # flusher's cancellation), hiding the hang. Here a stuck run stays not done.
    done, _ = await asyncio.wait([task], timeout=5)
    if task not in done:
        task.cancel()
    assert task in done, "the run waited for ever on its progress flusher"
    assert store.writes == 1
