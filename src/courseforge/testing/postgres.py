"""A throw-away PostgreSQL server on 127.0.0.1 for tests and benchmarks (`postgres_server`,
`create_database`): initdb into a temp dir, pg_ctl start, trust auth for one user, stopped (and
deleted) at the end. Binaries come from Debian's
`postgresql` package (`make deps-system`). initdb refuses to run as root, so as root the server
runs as the `postgres` system user."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["USER", "create_database", "pg_bin_dir", "postgres_server"]

USER = "courseforge"


def pg_bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_server_user() -> list[str]:
    if os.geteuid() != 0:
        return []
    pwd.getpwnam("postgres")  # KeyError: no such user
    return ["runuser", "-u", "postgres", "--"]


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yields a base URL `postgresql://courseforge@127.0.0.1:PORT` (append `/dbname`)."""
    bin_dir = pg_bin_dir()
    if bin_dir is None:
        raise FileNotFoundError("initdb")
    prefix = _as_server_user()
    root = Path(tempfile.mkdtemp(prefix="courseforge-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    if prefix:
        entry = pwd.getpwnam("postgres")
        for p in (root, sock):
            os.chown(p, entry.pw_uid, entry.pw_gid)
    port = _free_port()
    env = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}

    def run(*args: str) -> None:
        subprocess.run([*prefix, *args], check=True, capture_output=True, env=env, timeout=120)

    try:
        run(str(bin_dir / "initdb"), "-D", str(data), "-U", USER, "--auth=trust", "-E", "UTF8", "--no-sync")
        opts = f"-p {port} -k {sock} -h 127.0.0.1 -c fsync=off -c max_connections=200"
        run(str(bin_dir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(root / "log"), "-w", "start")
        try:
            yield f"postgresql://{USER}@127.0.0.1:{port}"
        finally:
            subprocess.run(
                [*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                capture_output=True,
                env=env,
                timeout=60,
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


def create_database(base_url: str) -> str:
    """A new empty database on the server; returns its URL."""
    import psycopg

    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(base_url + "/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return f"{base_url}/{name}"
