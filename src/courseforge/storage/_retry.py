"""Trying a store operation again through transient failures: the one backoff both backends use.

A backend says how an error passes (`Transient`): "wait" (a busy pool, a lost connection, a
locked SQLite file: tried again with backoff until the patience runs out), "once" (the server
rolled the transaction back, a deadlock: tried once more) or "" (raised at once). Backoff starts
at `FIRST_DELAY_S`, doubles to `MAX_DELAY_S` and is drawn in its upper half (jitter, so writers
that failed together do not come back together). When the patience runs out the last failure is
raised as the cause of a `StoreBusy` that says how long the store was tried.

Every write a job makes is keyed (a checkpoint is an upsert on its job and step), so a write
tried again, even one whose commit was lost with its connection, cannot be stored twice.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ._base import StoreBusy

__all__ = ["FIRST_DELAY_S", "MAX_DELAY_S", "RETRY_S", "Transient", "retrying"]

log = logging.getLogger("courseforge.storage")
T = TypeVar("T")

#: How an error passes: "wait", "once" or "" (see the module's docstring).
Transient = Callable[[BaseException], str]

#: Seconds before the first retry (drawn in its upper half), doubling to `MAX_DELAY_S`.
FIRST_DELAY_S = 0.1
MAX_DELAY_S = 5.0
#: Seconds a job's query or write keeps trying before it gives up (a store's default patience).
RETRY_S = 600.0


async def retrying(
    attempt: Callable[[], Awaitable[T]],
    *,
    transient: Transient,
    patience_s: float,
    sleep: Callable[[float], Awaitable[None]],
    retried: dict[str, int],
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """`attempt()`, tried again through transient failures for up to `patience_s` seconds;
    `retried` counts the retries by kind (for tests and logs)."""
    deadline = clock() + patience_s
    delay, rolled_back = FIRST_DELAY_S, 0
    while True:
        try:
            return await attempt()
        except Exception as exc:
            kind = transient(exc)
            if not kind or (kind == "once" and rolled_back):
                raise
            if clock() >= deadline:
                raise StoreBusy(patience_s, f"{type(exc).__name__}: {exc}".strip()) from exc
            rolled_back += kind == "once"
            retried[kind] = retried.get(kind, 0) + 1
            log.info("store: %s, trying again in %.1f s", type(exc).__name__, delay)
            await sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, MAX_DELAY_S)
