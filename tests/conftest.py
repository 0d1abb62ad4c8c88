"""Shared fixtures of the engine tests (helpers live in engine_helpers.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from courseforge.config import Settings
from courseforge.domain import AnalysisResult
from courseforge.testing.processes import redis_binary, redis_server
from engine_helpers import example_analysis, hosted_settings


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
