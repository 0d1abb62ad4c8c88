from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from courseforge.storage import Store, open_store
from courseforge.testing.postgres import create_database, pg_bin_dir, postgres_server


@pytest.fixture(scope="session")
def pg_base_url() -> Iterator[str]:
    if pg_bin_dir() is None:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) are not installed: run `make deps-system`")
    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/store.db"
    else:
        url = create_database(request.getfixturevalue("pg_base_url"))
    s = open_store(url)
    await s.init()
    try:
        yield s
    finally:
        await s.close()
