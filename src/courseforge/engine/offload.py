"""Where a course's CPU-bound gate work runs: a bounded pool beside the service's event loop.

Each lesson attempt's rule gates (`quality.lesson_gates.rule_gates`) are one hop to this pool,
so that with a hundred courses in flight the event loop keeps answering `/health`, the
dashboard and the providers' sockets while gates run. `gates.workers` bounds the pool (0: the
work runs on the loop, as before); `gates.workers_kind` picks threads (the default: no copy of
the arguments, the safety classifier loaded once per process) or processes (real parallelism
past the GIL, each worker loading its own classifier; the arguments are pickled every hop).
docs/scaling.md has the measurements behind the default.
"""

from __future__ import annotations

import asyncio
import functools
import multiprocessing
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any, TypeVar

__all__ = ["GateExecutor"]

T = TypeVar("T")


class GateExecutor:
    """`await pool(fn, *args)`: `fn(*args)` in the pool (inline with 0 workers). Built lazily,
    so an engine that never gates a lesson starts no thread or process; `close()` ends it."""

    def __init__(self, workers: int, kind: str = "thread") -> None:
        if workers < 0:
            raise ValueError("workers must be >= 0")
        if kind not in ("thread", "process"):
            raise ValueError(f"kind must be 'thread' or 'process', not {kind!r}")
        self.workers, self.kind = workers, kind
        self._executor: Executor | None = None

    def _pool(self) -> Executor:
        if self._executor is None:
            if self.kind == "process":
                # Spawned, not forked: a service forks with threads running (uvicorn's, the
                # store's), whose locks a forked child could inherit held.
                self._executor = ProcessPoolExecutor(
                    max_workers=self.workers, mp_context=multiprocessing.get_context("spawn")
                )
            else:
                self._executor = ThreadPoolExecutor(
                    max_workers=self.workers, thread_name_prefix="courseforge-gates"
                )
        return self._executor

    async def __call__(self, fn: Callable[..., T], *args: Any) -> T:
        if self.workers == 0:
            return fn(*args)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool(), functools.partial(fn, *args))

    def close(self) -> None:
        """Stop the pool (work still queued is dropped; running work finishes on its own)."""
        if self._executor is not None:
            executor, self._executor = self._executor, None
            executor.shutdown(wait=False, cancel_futures=True)
