"""A run's progress flusher ends with the run, even when a store write swallows its cancellation."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, cast

from courseforge.jobs.progress import ProgressSaver, ProgressTracker, tracked_run
from courseforge.storage import Job, Store, open_store


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
    done, _ = await asyncio.wait([task], timeout=30)
    if task not in done:
        task.cancel()
    assert task in done, "the run waited for ever on its progress flusher"
    assert store.writes == 1


async def test_one_saver_writes_every_running_jobs_progress_in_one_transaction(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/s.db")
    await store.init()
    try:
        for job_id in ("a", "b", "c"):
            await store.create_job(Job(id=job_id, course_id="c", analysis={}, input_digest="d"))
            await store.start_run(job_id)
        await store.update_job("c", status="completed", progress={"message": "final"})
        saver = ProgressSaver(store, interval_s=3600)  # flushed by hand below
        trackers = {job_id: ProgressTracker() for job_id in ("a", "b", "c")}
        for job_id, tracker in trackers.items():
            saver.add(job_id, tracker)
            tracker.data["message"] = f"{job_id} at work"
            tracker.dirty = job_id != "b"
        calls: list[int] = []
        original = store.save_progress

        async def counting(progress: Any) -> None:
            calls.append(len(progress))
            await original(progress)

        store.save_progress = counting  # type: ignore[method-assign]
        assert await saver.flush() == 2 and calls == [2]  # a and c, in one call
        assert await saver.flush() == 0 and calls == [2]  # nothing changed since
        saver.remove("a")
        await saver.aclose()
        got = {j: (await store.get_job(j)) for j in ("a", "b", "c")}
        assert got["a"] is not None and got["a"].progress["message"] == "a at work"
        assert got["b"] is not None and got["b"].progress == {}  # never dirty: not written
        assert got["c"] is not None and got["c"].progress == {"message": "final"}  # finished: kept
    finally:
        await store.close()
