"""Child processes for tests and benchmarks, on 127.0.0.1: a free port (`free_port`), a process
that is always stopped at the end (`child_process`: terminate, wait, then kill), waiting until it
answers (`wait_http` for a URL such as `/health`, `wait_port` for a TCP port) and a throw-away
`redis-server` (`redis_server`, from Debian's `redis-server` package: `make deps-system`)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

__all__ = [
    "accepts",
    "child_process",
    "free_port",
    "redis_binary",
    "redis_server",
    "stop",
    "wait_http",
    "wait_port",
    "wait_ready",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def accepts(port: int) -> bool:
    """Whether something listens on 127.0.0.1:`port`."""
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def stop(proc: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    """Terminate, wait up to `timeout_s`, then kill (a process that already ended is left as is)."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


@contextmanager
def child_process(
    args: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    log: Path | None = None,
    stop_timeout_s: float = 30.0,
) -> Iterator[subprocess.Popen[bytes]]:
    """Starts `args`, stdout and stderr into `log` (or discarded), and stops it on exit (`stop`)."""
    with ExitStack() as stack:
        out = stack.enter_context(log.open("wb")) if log is not None else subprocess.DEVNULL
        proc = subprocess.Popen(
            list(args), env=None if env is None else dict(env), stdout=out, stderr=subprocess.STDOUT
        )
        try:
            yield proc
        finally:
            stop(proc, stop_timeout_s)


def wait_ready(
    ready: Callable[[], bool],
    proc: subprocess.Popen[bytes],
    what: str,
    *,
    timeout_s: float = 60.0,
    log: Path | None = None,
    interval_s: float = 0.2,
) -> None:
    """Polls `ready()` until true. RuntimeError (with the end of `log`) when `proc` exits first or
    `timeout_s` passes."""
    deadline = time.monotonic() + timeout_s
    while not ready():
        tail = f":\n{log.read_text('utf-8', 'replace')[-2000:]}" if log is not None and log.exists() else ""
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} before it was ready{tail}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start within {timeout_s:g} s{tail}")
        time.sleep(interval_s)


def wait_http(
    url: str,
    proc: subprocess.Popen[bytes],
    what: str,
    *,
    timeout_s: float = 60.0,
    log: Path | None = None,
    ok_below: int = 500,
) -> None:
    """Waits until GET `url` answers with a status below `ok_below` (300: only a 2xx will do)."""

    def answers() -> bool:
        try:
            return httpx.get(url, timeout=2).status_code < ok_below
        except httpx.HTTPError:
            return False

    wait_ready(answers, proc, what, timeout_s=timeout_s, log=log)


def wait_port(
    port: int, proc: subprocess.Popen[bytes], what: str, *, timeout_s: float = 60.0, log: Path | None = None
) -> None:
    """Waits until 127.0.0.1:`port` accepts a connection."""
    wait_ready(lambda: accepts(port), proc, what, timeout_s=timeout_s, log=log, interval_s=0.05)


def redis_binary() -> str | None:
    found = shutil.which("redis-server")
    if found:
        return found
    return next((p for p in ("/usr/bin/redis-server", "/usr/sbin/redis-server") if Path(p).exists()), None)


@contextmanager
def redis_server(directory: Path | None = None, *, timeout_s: float = 10.0) -> Iterator[str]:
    """Yields `redis://127.0.0.1:PORT/0`: a redis-server without persistence, its files and log
    in `directory` (a temp dir, deleted at the end, when None). FileNotFoundError without the
    binary; RuntimeError when it does not start."""
    binary = redis_binary()
    if binary is None:
        raise FileNotFoundError("redis-server")
    with ExitStack() as stack:
        if directory is None:
            directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="courseforge-redis-")))
        port = free_port()
        cmd = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        log = directory / "redis.log"
        proc = stack.enter_context(child_process([*cmd, "--dir", str(directory)], log=log, stop_timeout_s=10))
        wait_port(port, proc, "redis-server", timeout_s=timeout_s, log=log)
        yield f"redis://127.0.0.1:{port}/0"
