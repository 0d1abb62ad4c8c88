from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from courseforge.storage import Store, open_store


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    url = f"sqlite:///{tmp_path}/store.db" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    s = open_store(url)
    await s.init()
    try:
        yield s
    finally:
        await s.close()
