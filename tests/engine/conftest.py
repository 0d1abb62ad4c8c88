"""Fixtures of the engine tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from courseforge.storage import Store, open_store


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    """A job store in a fresh SQLite file."""
    s = open_store(f"sqlite:///{tmp_path}/jobs.db")
    await s.init()
    try:
        yield s
    finally:
        await s.close()
