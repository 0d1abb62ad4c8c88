"""A store under contention, for the storage and service tests: a backoff that does not sleep,
a task that holds a PostgreSQL pool's connection, and a wait for a condition with a deadline
(never a count of loop turns: CI runs on a loaded machine)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from courseforge.storage import PostgresStore


async def no_wait(_: float) -> None:
    """The store's backoff, without sleeping (the pool's own short wait paces the retries)."""


async def poll(condition: Callable[[], bool], what: str, deadline_s: float = 30.0) -> None:
    end = time.monotonic() + deadline_s
    while not condition():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def holding(store: PostgresStore, release: asyncio.Event) -> None:
    """Hold one of the store's pooled connections until `release` is set."""
    pool = await store._open()
    async with pool.connection():
        await release.wait()


async def pool_taken(store: PostgresStore) -> None:
    """Wait until no pooled connection of `store` is free."""
    await poll(lambda: store._pool.get_stats().get("pool_available", 1) == 0, "the holder's connection")
