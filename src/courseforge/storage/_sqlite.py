"""SQLite store: one file, created on first use; WAL so a CLI run and a service can share it.

All statements run on one private thread with one connection (sqlite3 objects are not
thread-safe), so the event loop never waits on disk. `synchronous=NORMAL` under WAL keeps every
committed transaction across a killed process (only an OS crash can lose the last ones).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from ._sql import SQLStore, Statement

__all__ = ["SQLiteStore"]

T = TypeVar("T")


class SQLiteStore(SQLStore):
    dialect = "sqlite"
    _types: ClassVar[Mapping[str, str]] = {"ts": "REAL", "autoid": "INTEGER PRIMARY KEY AUTOINCREMENT"}

    def __init__(self, path: str | Path) -> None:
        self.path = str(path) if str(path) == ":memory:" else str(Path(path).expanduser())
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="courseforge-sqlite")
        self._conn: sqlite3.Connection | None = None

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r})"

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
            conn.execute("PRAGMA busy_timeout = 30000")
            if self.path != ":memory:":
                conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            self._conn = conn
        return self._conn

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(self._connect()))

    async def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return await self._run(lambda c: c.execute(sql, tuple(params)).fetchall())

    async def _transaction(
        self, statements: Sequence[Statement], require: Mapping[int, str] | None = None
    ) -> list[int]:
        def run(conn: sqlite3.Connection) -> list[int]:
            counts: list[int] = []
            conn.execute("BEGIN IMMEDIATE")
            try:
                for i, (sql, params) in enumerate(statements):
                    counts.append(conn.execute(sql, tuple(params)).rowcount)
                    self._check(i, counts[-1], require)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
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
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

        await self._run(run)

    async def close(self) -> None:
        def shut(conn: sqlite3.Connection) -> None:
            conn.close()

        if self._conn is not None:
            await self._run(shut)
            self._conn = None
        self._executor.shutdown(wait=False)
