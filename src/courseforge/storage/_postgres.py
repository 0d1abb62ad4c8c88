"""PostgreSQL store (psycopg 3, async, pooled): the production option, same interface and same
SQL as SQLite. Migrations take a transaction-scoped advisory lock, so many service replicas and
workers can start at once. Put the password in `PGPASSWORD` or `~/.pgpass`, not in the URL.

A query or write that meets a transient failure is tried again, with backoff (`_retry.py`, as
the SQLite store does), for up to `retry_s`: a wait for a pooled connection that timed out
(`PoolTimeout`: nothing was sent), a lost connection or a server refusing connections for a
moment (SQLSTATE classes 08, 53, 57), and once a deadlock or serialization failure (the server
rolled the transaction back). A job on a service starved of CPU then slows down instead of
failing on the pool. Every write a job makes is keyed (a checkpoint is an upsert on its job and
step), so a write whose commit was lost with its connection and is tried again cannot be stored
twice."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, ClassVar, TypeVar

from ._retry import RETRY_S
from ._sql import SQLStore, Statement

__all__ = ["PostgresStore", "masked_url", "transient"]

T = TypeVar("T")

#: Arbitrary constant naming our migration lock.
_MIGRATION_LOCK = 0x636F7572  # "cour"
#: Seconds `ping` waits to open its connection (psycopg's minimum is 2).
_PING_CONNECT_S = 5
#: SQLSTATE classes of a failure that passes: connection exception, insufficient resources,
#: operator intervention (a server restarting, "cannot connect now").
_TRANSIENT_CLASSES = ("08", "53", "57")
#: Deadlock detected, serialization failure: the server rolled the transaction back.
_ROLLED_BACK = ("40P01", "40001")


def transient(exc: BaseException) -> str:
    """How a store error passes: "wait" (retried with backoff), "once" (a rolled-back
    transaction: retried once) or "" (not transient: raised)."""
    import psycopg
    from psycopg_pool import PoolTimeout

    if isinstance(exc, PoolTimeout):
        return "wait"
    if not isinstance(exc, psycopg.OperationalError):
        return ""
    state = exc.sqlstate
    if state in _ROLLED_BACK:
        return "once"
    if state is None or state[:2] in _TRANSIENT_CLASSES:
        return "wait"
    return ""


def masked_url(url: str) -> str:
    """The URL with any password replaced, for logs and `config show`."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:****@", url)


def _pg(sql: str) -> str:
    return sql.replace("%", "%%").replace("?", "%s")


class PostgresStore(SQLStore):
    dialect = "postgresql"
    _transient = staticmethod(transient)
    _types: ClassVar[Mapping[str, str]] = {"ts": "DOUBLE PRECISION", "autoid": "BIGSERIAL PRIMARY KEY"}

    def __init__(
        self,
        url: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        wait_s: float = 30.0,
        retry_s: float = RETRY_S,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        request_pool_size: int = 2,
    ) -> None:
        self.url = url
        self._min_size, self._max_size = min_size, max_size
        #: Connections kept apart for `serving` views (requests: the API, the dashboard), so that
        #: a page never queues behind the running jobs' writes (0: requests share the jobs' pool).
        self._request_max = request_pool_size
        self._request_pool: Any = None
        #: True for a `serving` view: its queries go through the request pool.
        self._for_requests = False
        self._open_lock = asyncio.Lock()
        #: Seconds one wait for a pooled connection lasts before it is tried again.
        self._wait_s = wait_s
        self._set_patience(retry_s, sleep)
        self._pool: Any = None
        #: `ping`'s own connection (opened on first use), outside the pool the jobs share.
        self._ping_conn: Any = None
        self._ping_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"PostgresStore({masked_url(self.url)!r})"

    def serving(self, patience_s: float) -> PostgresStore:
        view = super().serving(patience_s)
        view._wait_s = min(self._wait_s, patience_s)
        view._for_requests = self._request_max > 0
        return view

    async def _open(self) -> Any:
        """The pool this store's queries use: the jobs' pool, or a view's request pool (both
        belong to the store the view was made from, opened on first use)."""
        root = self._root
        pool = root._request_pool if self._for_requests else root._pool
        if pool is not None:
            return pool
        async with root._open_lock:  # many first requests at once open one pool
            if self._for_requests:
                if root._request_pool is None:
                    root._request_pool = await self._new_pool(1, root._request_max)
                return root._request_pool
            if root._pool is None:
                root._pool = await self._new_pool(root._min_size, root._max_size)
            return root._pool

    async def _new_pool(self, min_size: int, max_size: int) -> Any:
        from psycopg_pool import AsyncConnectionPool

        # Autocommit: a query or a one-statement write is one round trip, not three (psycopg
        # otherwise sends BEGIN before it and COMMIT when the connection goes back to the
        # pool; py-spy at 100 courses in flight found those two a sixth of the event loop).
        pool = AsyncConnectionPool(
            self.url,
            min_size=min_size,
            max_size=max_size,
            open=False,
            timeout=self._wait_s,
            kwargs={"autocommit": True},
        )
        await pool.open(wait=True, timeout=30)
        return pool

    def pool_stats(self) -> dict[str, dict[str, int]]:
        """psycopg_pool's counters per pool opened so far ("jobs", "requests"): requests served,
        those that queued for a connection, milliseconds waited, connections in use."""
        root = self._root
        pools = {"jobs": root._pool, "requests": root._request_pool}
        return {name: pool.get_stats() for name, pool in pools.items() if pool is not None}

    async def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        pool = await self._open()

        async def attempt() -> list[tuple[Any, ...]]:
            async with pool.connection(timeout=self._wait_s) as conn, conn.cursor() as cur:
                await cur.execute(_pg(sql), tuple(params))
                rows: list[tuple[Any, ...]] = await cur.fetchall()
                return rows

        return await self._retrying(attempt)

    async def ping(self) -> None:
        """`SELECT 1` on a connection of its own (one, kept open; pings take turns on it): with
        the pool's connections all taken by running jobs, a pooled check waited seconds."""
        import psycopg

        if self._root is not self:
            return await self._root.ping()
        async with self._ping_lock:
            try:
                if self._ping_conn is None or self._ping_conn.closed:
                    self._ping_conn = await psycopg.AsyncConnection.connect(
                        self.url, autocommit=True, connect_timeout=_PING_CONNECT_S
                    )
                await self._ping_conn.execute("SELECT 1")
            except Exception:
                conn, self._ping_conn = self._ping_conn, None
                if conn is not None:
                    await conn.close()
                raise

    async def _transaction(
        self, statements: Sequence[Statement], require: Mapping[int, str] | None = None
    ) -> list[int]:
        pool = await self._open()

        async def attempt() -> list[int]:
            counts: list[int] = []
            async with pool.connection(timeout=self._wait_s) as conn:
                # One statement is atomic on its own (and one that `require`s a change and
                # changed nothing has nothing to roll back); several take BEGIN ... COMMIT.
                block = conn.transaction() if len(statements) > 1 else contextlib.nullcontext()
                async with block, conn.cursor() as cur:
                    for i, (sql, params) in enumerate(statements):
                        await cur.execute(_pg(sql), tuple(params))
                        counts.append(cur.rowcount)
                        self._check(i, counts[-1], require)
            return counts

        return await self._retrying(attempt)

    async def _migrate(self, pending: Sequence[tuple[int, list[str]]]) -> None:
        pool = await self._open()
        async with pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            await cur.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            await cur.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)"
            )
            await cur.execute("SELECT version FROM schema_migrations")
            applied = {r[0] for r in await cur.fetchall()}
            for version, statements in pending:
                if version in applied:
                    continue
                for sql in statements:
                    await cur.execute(sql.replace("%", "%%"))
                await cur.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (%s, %s)",
                    (version, time.time()),
                )

    async def close(self) -> None:
        if self._root is not self:
            return await self._root.close()
        if self._ping_conn is not None:
            conn, self._ping_conn = self._ping_conn, None
            await conn.close()
        for name in ("_pool", "_request_pool"):
            pool = getattr(self, name)
            if pool is not None:
                setattr(self, name, None)
                await pool.close()
