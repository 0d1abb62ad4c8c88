"""Jobs, checkpoints, courses, reports, call records and the review queue: SQLite by default
(a file created on first use), PostgreSQL for production, one `Store` interface.

    store = open_store("sqlite:///~/.cache/courseforge/courseforge.db")
    await store.init()          # connects and applies pending migrations
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from ..errors import ConfigError
from ._base import (
    TERMINAL_STATUSES,
    CachedResponse,
    Checkpoint,
    Job,
    JobStatus,
    PendingBatch,
    ReviewItem,
    ReviewStatus,
    Store,
    StoreBusy,
    StoreConflict,
    StoredCall,
)
from ._postgres import PostgresStore, masked_url
from ._sql import MIGRATIONS
from ._sqlite import SQLiteStore

__all__ = [
    "MIGRATIONS",
    "TERMINAL_STATUSES",
    "CachedResponse",
    "Checkpoint",
    "Job",
    "JobStatus",
    "PendingBatch",
    "PostgresStore",
    "ReviewItem",
    "ReviewStatus",
    "SQLiteStore",
    "Store",
    "StoreBusy",
    "StoreConflict",
    "StoredCall",
    "masked_url",
    "open_store",
    "storage_url",
]


def storage_url(configured: str, env: Mapping[str, str] | None = None) -> str:
    """`$COURSEFORGE_STORAGE_URL` if set, else the configured `storage.url`."""
    env = os.environ if env is None else env
    return env.get("COURSEFORGE_STORAGE_URL") or configured


def open_store(url: str, *, pool_size: int = 10, request_pool_size: int = 2) -> Store:
    """A store for `sqlite:///PATH` (`sqlite:///:memory:` for tests) or `postgresql://…`
    (keeping at most `pool_size` connections for jobs and `request_pool_size` more for requests)."""
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        if not path:
            raise ConfigError("bad storage url", [("storage.url", "sqlite:/// needs a file path")])
        # sqlite:////abs/path and sqlite:///~/path and sqlite:///relative/path all work.
        return SQLiteStore(path if path.startswith(("/", "~", ":memory:")) else os.path.abspath(path))
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresStore(url, max_size=pool_size, request_pool_size=request_pool_size)
    raise ConfigError(
        "unsupported storage url",
        [("storage.url", f"{masked_url(url)!r}: use sqlite:///PATH or postgresql://USER@HOST:PORT/DB")],
    )
