"""Shared fixtures of the engine tests (helpers live in engine_helpers.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from courseforge.config import Settings
from courseforge.domain import AnalysisResult
from courseforge.storage import PostgresStore
from courseforge.testing.postgres import create_database, pg_bin_dir, postgres_server
from courseforge.testing.processes import redis_binary, redis_server
from engine_helpers import example_analysis, hosted_settings
from store_helpers import no_wait


@pytest.fixture(autouse=True)
def _isolated_store(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Jobs and checkpoints of a test go to its own SQLite file, never to ~/.cache."""
    db = tmp_path_factory.mktemp("store") / "courseforge.db"
    monkeypatch.setenv("COURSEFORGE_STORAGE_URL", f"sqlite:///{db}")


@pytest.fixture
def settings() -> Settings:
    return hosted_settings()


@pytest.fixture
def analysis() -> AnalysisResult:
    return example_analysis()


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A throw-away redis-server on 127.0.0.1 for the module's tests (skipped without one)."""
    if redis_binary() is None:
        pytest.skip("redis-server is not installed (make deps-system / apt-get install redis-server)")
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture(scope="session")
def pg_base_url() -> Iterator[str]:
    """A throw-away PostgreSQL server on 127.0.0.1 for the session (skipped without one)."""
    if pg_bin_dir() is None:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) are not installed: run `make deps-system`")
    with postgres_server() as url:
        yield url


@pytest.fixture
def pg_url(pg_base_url: str) -> str:
    """A fresh database on the session's server."""
    return create_database(pg_base_url)


@pytest.fixture
async def one_connection(pg_url: str) -> AsyncIterator[PostgresStore]:
    """A PostgreSQL store whose pool has one connection, and a wait for it of 0.2 s."""
    store = PostgresStore(pg_url, max_size=1, wait_s=0.2, sleep=no_wait)
    await store.init()
    try:
        yield store
    finally:
        await store.close()
