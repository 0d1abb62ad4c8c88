"""Shared fixtures of the engine tests (helpers live in engine_helpers.py)."""

from __future__ import annotations

import pytest

from courseforge.config import Settings
from courseforge.domain import AnalysisResult
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
