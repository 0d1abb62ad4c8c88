"""SQLite store: one file, created on first use; WAL so a CLI run and a service can share it.

All statements run on one private thread with one connection (sqlite3 objects are not
thread-safe), so the event loop never waits on disk. `synchronous=NORMAL` under WAL keeps every
committed transaction across a killed process (only an OS crash can lose the last ones).

Several processes on one file take turns at its one write lock. A statement waits for it up to
`busy_timeout_s` (SQLite's own busy handler); a "database is locked" (or busy) after that is
tried again with backoff (`_retry.py`, as the PostgreSQL store does) for up to `retry_s`, then
raised as `StoreBusy`. A transaction that failed is rolled back before it is tried again, and
every write a job makes is keyed (a checkpoint is an upsert on its job and step), so a retried
write is stored once.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from ._retry import RETRY_S
from ._sql import SQLStore, Statement

__all__ = ["SQLiteStore", "transient"]

T = TypeVar("T")

#: Seconds a statement waits for another connection's lock before it fails "database is locked".
BUSY_TIMEOUT_S = 30.0


def transient(exc: BaseException) -> str:
    """How a SQLite error passes: "wait" for a locked or busy database (another connection held
    the lock past the busy timeout), "" for anything else (see `_retry.py`)."""
    code = getattr(exc, "sqlite_errorcode", None) if isinstance(exc, sqlite3.OperationalError) else None
    # The primary code (low byte): SQLITE_BUSY_SNAPSHOT and the like are busy too.
    return (
        "wait" if code is not None and (code & 0xFF) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) else ""
    )


class SQLiteStore(SQLStore):
    dialect = "sqlite"
    _transient = staticmethod(transient)
    _types: ClassVar[Mapping[str, str]] = {"ts": "REAL", "autoid": "INTEGER PRIMARY KEY AUTOINCREMENT"}

    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout_s: float = BUSY_TIMEOUT_S,
        retry_s: float = RETRY_S,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.path = str(path) if str(path) == ":memory:" else str(Path(path).expanduser())
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="courseforge-sqlite")
        self._conn: sqlite3.Connection | None = None
        #: Seconds a statement of this store waits for another connection's lock.
        self._busy_timeout_s = busy_timeout_s
        #: The busy timeout the shared connection has now (the root's; set on its thread).
        self._busy_now = busy_timeout_s
        self._set_patience(retry_s, sleep)

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r})"

    def serving(self, patience_s: float) -> SQLiteStore:
        view = super().serving(patience_s)
        view._busy_timeout_s = min(self._busy_timeout_s, patience_s)
        return view

    def _connection(self) -> sqlite3.Connection:
        """The shared connection, waiting for a lock as long as this store does (a request's
        view waits less than the jobs' store). Only on the store's thread."""
        conn, root = self._connect(), self._root
        if root._busy_now != self._busy_timeout_s:
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_s * 1000)}")
            root._busy_now = self._busy_timeout_s
        return conn

    def _connect(self) -> sqlite3.Connection:
        if self._root is not self:
            return self._root._connect()
        if self._conn is None:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            timeout = self._busy_timeout_s
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=timeout)
            conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            self._busy_now = timeout
            if self.path != ":memory:":
                conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            self._conn = conn
        return self._conn

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """`fn` on the store's thread, tried again while the database is locked (the wait
        between tries is on the event loop, so the thread serves other calls meanwhile)."""
        loop = asyncio.get_running_loop()

        async def attempt() -> T:
            return await loop.run_in_executor(self._executor, lambda: fn(self._connection()))

        return await self._retrying(attempt)

    async def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return await self._run(lambda c: c.execute(sql, tuple(params)).fetchall())

    async def _transaction(
        self, statements: Sequence[Statement], require: Mapping[int, str] | None = None
    ) -> list[int]:
        def run(conn: sqlite3.Connection) -> list[int]:
            counts: list[int] = []
            conn.execute("BEGIN IMMEDIATE")  # waits for the write lock (up to the busy timeout)
            try:
                for i, (sql, params) in enumerate(statements):
                    counts.append(conn.execute(sql, tuple(params)).rowcount)
                    self._check(i, counts[-1], require)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:  # a failed COMMIT leaves it open: a retry begins afresh
                    conn.execute("ROLLBACK")
                raise
            return counts

        return await self._run(run)

    async def _migrate(self, pending: Sequence[tuple[int, list[str]]]) -> None:
        def run(conn: sqlite3.Connection) -> None:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)"
            )
            conn.execute("BEGIN IMMEDIATE")  # the write lock: one migrating process at a time
            try:
                applied = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
                for version, statements in pending:
                    if version in applied:
                        continue
                    for sql in statements:
                        conn.execute(sql)
                    conn.execute(
                        "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                        (version, time.time()),
                    )
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

        await self._run(run)

    async def close(self) -> None:
        if self._root is not self:
            return await self._root.close()

        def shut(conn: sqlite3.Connection) -> None:
            conn.close()

        if self._conn is not None:
            await self._run(shut)
            self._conn = None
        self._executor.shutdown(wait=False)
