"""courseforge.testing.processes: child processes stopped for sure, waits that fail with the
child's log, and a throw-away redis-server."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from courseforge.testing.processes import (
    accepts,
    child_process,
    free_port,
    redis_binary,
    redis_server,
    stop,
    wait_http,
    wait_ready,
)

PY = sys.executable


def test_child_process_is_stopped_on_exit_and_its_output_logged(tmp_path: Path) -> None:
    log = tmp_path / "child.log"
    code = "import sys, time; print('started', flush=True); time.sleep(120)"
    with child_process([PY, "-c", code], log=log) as proc:
        wait_ready(lambda: "started" in log.read_text(), proc, "child")
        assert proc.poll() is None
    assert proc.returncode is not None
    assert log.read_text().strip() == "started"


def test_a_child_that_ignores_terminate_is_killed(tmp_path: Path) -> None:
    log = tmp_path / "stubborn.log"
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ignoring', flush=True); time.sleep(120)"
    )
    with child_process([PY, "-c", code], log=log, stop_timeout_s=0.5) as proc:
        wait_ready(lambda: "ignoring" in log.read_text(), proc, "stubborn child")
    assert proc.returncode == -9


def test_stop_leaves_an_ended_process_alone() -> None:
    proc = subprocess.Popen([PY, "-c", "raise SystemExit(3)"])
    proc.wait(30)
    stop(proc)
    assert proc.returncode == 3


def test_a_wait_names_the_child_and_shows_its_log_when_it_exits_first(tmp_path: Path) -> None:
    log = tmp_path / "dies.log"
    code = "import sys; print('cannot bind', flush=True); sys.exit(2)"
    failed = pytest.raises(RuntimeError, match=r"(?s)the server exited with code 2.*cannot bind")
    with child_process([PY, "-c", code], log=log) as proc, failed:
        wait_http(f"http://127.0.0.1:{free_port()}/health", proc, "the server", log=log)


def test_wait_http_returns_once_the_url_answers(tmp_path: Path) -> None:
    port = free_port()
    cmd = [PY, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(tmp_path)]
    with child_process(cmd) as proc:
        wait_http(f"http://127.0.0.1:{port}/", proc, "http.server", ok_below=300)
        assert accepts(port)
    assert not accepts(port)


@pytest.mark.skipif(redis_binary() is None, reason="redis-server is not installed (make deps-system)")
def test_redis_server_answers_on_loopback_and_is_gone_after(tmp_path: Path) -> None:
    with redis_server(tmp_path) as url:
        assert url.startswith("redis://127.0.0.1:") and url.endswith("/0")
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            conn.sendall(b"PING\r\n")
            assert conn.recv(64) == b"+PONG\r\n"
    assert not accepts(port)
    assert (tmp_path / "redis.log").exists()
