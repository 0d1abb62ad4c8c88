"""A job's progress as JSON data, fed by the pipeline's progress events, and saved while it runs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from ..pipeline import PHASES, ProgressEvent
from ..pipeline.state import track_progress
from ..storage import Store

__all__ = ["ProgressSaver", "ProgressTracker", "tracked_run"]

log = logging.getLogger("courseforge.jobs")


class ProgressTracker:
    """Per-phase progress of one job as JSON data, fed by the pipeline's progress events."""

    def __init__(self, initial: Mapping[str, Any] | None = None) -> None:
        self.data: dict[str, Any] = json.loads(json.dumps(initial or self.initial()))
        self.dirty = False
        self.listeners: list[Callable[[dict[str, Any]], None]] = []

    @staticmethod
    def initial() -> dict[str, Any]:
        return {
            "phases": {p: {"state": "pending", "done": 0, "total": 0} for p in PHASES},
            "message": "",
        }

    def __call__(self, event: ProgressEvent) -> None:
        track_progress(self.data, event)
        self.dirty = True
        payload = event.as_data()
        for listener in list(self.listeners):
            listener(payload)

    def feeding(self, progress: Callable[[ProgressEvent], None] | None) -> Callable[[ProgressEvent], None]:
        """A progress callback that updates this tracker, then calls `progress` (when given)."""

        def on_event(event: ProgressEvent) -> None:
            self(event)
            if progress:
                progress(event)

        return on_event


class ProgressSaver:
    """Saves the progress of every job a process runs, the changed ones together in one store
    transaction every `interval_s`, instead of one flusher and one transaction per job: with
    1,000 courses in one service on PostgreSQL (benchmarks/scale.py), per-job flushes (up to 2
    a second each) took the pool's connections from the jobs' own writes until those timed
    out (`PoolTimeout`) and the jobs failed."""

    def __init__(self, store: Store, *, interval_s: float = 0.5) -> None:
        self._store = store
        self._interval_s = interval_s
        self._trackers: dict[str, ProgressTracker] = {}
        self._task: asyncio.Task[None] | None = None

    def add(self, job_id: str, tracker: ProgressTracker) -> None:
        self._trackers[job_id] = tracker
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="jobs:progress")

    def remove(self, job_id: str) -> None:
        self._trackers.pop(job_id, None)

    async def flush(self) -> int:
        """Save every changed tracker now; returns how many."""
        dirty = {job_id: t for job_id, t in self._trackers.items() if t.dirty}
        for tracker in dirty.values():
            tracker.dirty = False
        if dirty:
            try:
                await self._store.save_progress({job_id: t.data for job_id, t in dirty.items()})
            except Exception:  # best effort, as a run's own flusher: the next round tries again
                for tracker in dirty.values():
                    tracker.dirty = True
                log.warning("could not save the progress of %d job(s)", len(dirty), exc_info=True)
        return len(dirty)

    async def _loop(self) -> None:
        while self._trackers:
            await asyncio.sleep(self._interval_s)
            await self.flush()

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task


@contextlib.asynccontextmanager
async def tracked_run(
    store: Store,
    job_id: str,
    tracker: ProgressTracker,
    *,
    flush_interval_s: float,
    interrupted: Callable[[], Awaitable[None]],
    saver: ProgressSaver | None = None,
) -> AsyncIterator[None]:
    """Around one run of a job: saves the tracker's progress every `flush_interval_s` (best
    effort; through `saver` with the process's other jobs when given); a cancelled run awaits
    `interrupted()` (shielded, its errors ignored) before the cancellation goes on; a failed run
    marks the job failed."""
    done = asyncio.Event()
    flusher: asyncio.Task[None] | None = None
    if saver is not None:
        saver.add(job_id, tracker)
    else:
        flusher = asyncio.create_task(_flush_progress(store, job_id, tracker, flush_interval_s, done))
    try:
        yield
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await asyncio.shield(interrupted())
        raise
    except Exception as exc:
        await store.update_job(
            job_id, status="failed", error=f"{type(exc).__name__}: {exc}"[:1000], progress=tracker.data
        )
        raise
    finally:
        if saver is not None:
            saver.remove(job_id)
        done.set()
        if flusher is not None:
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher


async def _flush_progress(
    store: Store, job_id: str, tracker: ProgressTracker, interval_s: float, done: asyncio.Event
) -> None:
    """Saves progress every `interval_s` until `done` is set. The run's end both sets `done` and
    cancels this task, and the loop checks `done`: a cancellation that lands inside a store
    write can be swallowed by the database driver (seen with PostgreSQL under load in
    benchmarks/scale.py: 9 of 200 jobs never finished, their run waiting for ever on a flusher
    that had gone back to sleeping), and then the flag still ends the loop."""
    while not done.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), interval_s)
        if done.is_set():
            return
        if tracker.dirty:
            tracker.dirty = False
            try:
                await store.update_job(job_id, progress=tracker.data)
            except Exception:  # progress is best effort; the result write is not
                log.warning("could not save progress of job %s", job_id, exc_info=True)
