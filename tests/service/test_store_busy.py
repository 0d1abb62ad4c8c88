"""A busy store, as a request sees it: on the real PostgreSQL, with the pool's only connection
taken, an API read is answered 503 with Retry-After after `service.request_store_wait_s`, while
a job's write on the same store keeps waiting and goes through once the connection is free."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from service_helpers import AUTH, TOKEN

from courseforge.config import Settings
from courseforge.service import create_app
from courseforge.storage import Job, PostgresStore
from courseforge.testing.postgres import create_database, pg_bin_dir, postgres_server
from engine_helpers import make_engine, scripted_models


async def _no_wait(_: float) -> None:
    """The store's backoff, without sleeping (the pool's own short wait paces the retries)."""


@pytest.fixture(scope="module")
def pg_base_url() -> Iterator[str]:
    if pg_bin_dir() is None:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) are not installed: run `make deps-system`")
    with postgres_server() as url:
        yield url


@pytest.fixture
async def one_connection(pg_base_url: str) -> AsyncIterator[PostgresStore]:
    """A store whose pool has one connection, and a wait for it of 0.2 s."""
    store = PostgresStore(create_database(pg_base_url), max_size=1, wait_s=0.2, sleep=_no_wait)
    await store.init()
    try:
        yield store
    finally:
        await store.close()


async def _poll(condition: Any, what: str, deadline_s: float = 30.0) -> None:
    end = time.monotonic() + deadline_s
    while not condition():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def _holding(store: PostgresStore, release: asyncio.Event) -> None:
    pool = await store._open()
    async with pool.connection():
        await release.wait()


async def test_a_read_on_a_busy_pool_answers_503_while_a_jobs_write_waits_on(
    one_connection: PostgresStore, settings: Settings
) -> None:
    store = one_connection
    await store.create_job(Job(id="job-1", course_id="c", analysis={}, input_digest="d", created_at=1.0))
    service_settings = settings.service.model_copy(update={"request_store_wait_s": 1.0})
    app = create_app(
        settings.model_copy(update={"service": service_settings}),
        store=store,
        engine=make_engine(settings, scripted_models(settings)),
        tokens=[TOKEN],
        resume=False,
    )
    release = asyncio.Event()
    holder = asyncio.create_task(_holding(store, release))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://courseforge.test") as client:
        try:
            await _poll(
                lambda: store._pool.get_stats().get("pool_available", 1) == 0, "the holder's connection"
            )
            write = asyncio.create_task(store.update_job("job-1", status="failed", error="stopped by hand"))
            busy = await asyncio.wait_for(client.get("/v1/jobs/job-1", headers=AUTH), 120)
            assert busy.status_code == 503
            assert busy.headers["Retry-After"] == "1"
            assert busy.json()["error"] == {
                "message": "store busy",
                "problems": [
                    {"path": "store", "reason": "the store did not answer within 1 s; try again in 1 s"}
                ],
            }
            assert not write.done()  # the job's write keeps trying
            tried = store.retried["wait"]
            await _poll(lambda: store.retried["wait"] >= tried + 3, "the job's write to keep trying")
            assert not write.done()
        finally:
            release.set()
            await holder
        await asyncio.wait_for(write, 60)
        answered = await client.get("/v1/jobs/job-1", headers=AUTH)
        assert answered.status_code == 200
        assert answered.json()["status"] == "failed" and answered.json()["error"] == "stopped by hand"
