"""A busy store, as a request sees it, on the real PostgreSQL. Requests have connections of
their own (`storage.request_pool_size`): with the jobs' pool all taken, an API read still
answers at once. Where requests share the jobs' pool (`request_pool_size: 0`) and its only
connection is taken, a read is answered 503 with Retry-After after
`service.request_store_wait_s`, while a job's write on the same store keeps waiting and goes
through once the connection is free. An event stream skips a poll that finds the store busy."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import Request
from service_helpers import AUTH, TOKEN

from courseforge.config import Settings
from courseforge.service import create_app
from courseforge.service.api_jobs import event_stream
from courseforge.service.manager import JobManager
from courseforge.service.metrics import ServiceMetrics
from courseforge.storage import Job, PostgresStore, SQLiteStore, StoreBusy
from engine_helpers import make_engine, scripted_models
from store_helpers import holding, no_wait, poll, pool_taken


@pytest.fixture
async def shared_connection(pg_url: str) -> AsyncIterator[PostgresStore]:
    """One connection in all, which requests share with the jobs, and a wait for it of 0.2 s."""
    store = PostgresStore(pg_url, max_size=1, wait_s=0.2, sleep=no_wait, request_pool_size=0)
    await store.init()
    try:
        yield store
    finally:
        await store.close()


@contextlib.asynccontextmanager
async def _client_while_the_jobs_connection_is_held(
    store: PostgresStore, settings: Settings
) -> AsyncIterator[tuple[httpx.AsyncClient, asyncio.Event]]:
    """An app on `store` with job-1 stored, and a client of it, while another task holds the
    jobs' pool's only connection until the event is set (or the block ends)."""
    await store.create_job(Job(id="job-1", course_id="c", analysis={}, input_digest="d", created_at=1.0))
    app = create_app(
        settings,
        store=store,
        engine=make_engine(settings, scripted_models(settings)),
        tokens=[TOKEN],
        resume=False,
    )
    release = asyncio.Event()
    holder = asyncio.create_task(holding(store, release))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://courseforge.test") as client:
        try:
            await pool_taken(store)
            yield client, release
        finally:
            release.set()
            await holder


async def test_a_read_answers_from_its_own_pool_while_the_jobs_pool_is_taken(
    one_connection: PostgresStore, settings: Settings
) -> None:
    store = one_connection
    async with _client_while_the_jobs_connection_is_held(store, settings) as (client, _):
        read = await asyncio.wait_for(client.get("/v1/jobs/job-1", headers=AUTH), 60)
        assert read.status_code == 200 and read.json()["status"] == "queued"
        assert store.retried["wait"] == 0  # nothing waited for the jobs' connection
        scraped = (await client.get("/metrics", headers=AUTH)).text
    assert 'courseforge_store_pool_connections_in_use{pool="jobs"} 1.0' in scraped
    served = [
        line
        for line in scraped.splitlines()
        if line.startswith('courseforge_store_pool_requests_total{pool="requests"}')
    ]
    assert served and float(served[0].split()[-1]) >= 1


async def test_a_read_on_a_busy_shared_pool_answers_503_while_a_jobs_write_waits_on(
    shared_connection: PostgresStore, settings: Settings
) -> None:
    store = shared_connection
    service_settings = settings.service.model_copy(update={"request_store_wait_s": 1.0})
    settings = settings.model_copy(update={"service": service_settings})
    async with _client_while_the_jobs_connection_is_held(store, settings) as (client, release):
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
        await poll(lambda: store.retried["wait"] >= tried + 3, "the job's write to keep trying")
        assert not write.done()
        release.set()
        await asyncio.wait_for(write, 60)
        answered = await client.get("/v1/jobs/job-1", headers=AUTH)
        assert answered.status_code == 200
        assert answered.json()["status"] == "failed" and answered.json()["error"] == "stopped by hand"


class _BusyThenDone:
    """A store whose `get_job` finds it busy twice, then answers the job completed."""

    def __init__(self, job: Job) -> None:
        self.job, self.asked = job, 0

    async def get_job(self, job_id: str) -> Job:
        self.asked += 1
        if self.asked <= 2:
            raise StoreBusy(1.0, "PoolTimeout: couldn't get a connection after 1.00 sec")
        return dataclasses.replace(self.job, status="completed")


async def test_an_event_stream_skips_a_poll_that_finds_the_store_busy(
    settings: Settings, tmp_path: Path
) -> None:
    """A job another process runs is followed in the store; a poll that finds it busy is
    skipped (the stream goes on), and the next one sees the job end."""
    service_settings = settings.service.model_copy(update={"store_poll_s": 0.05})
    settings = settings.model_copy(update={"service": service_settings})
    sqlite = SQLiteStore(tmp_path / "manager.db")
    engine = make_engine(settings, scripted_models(settings))
    manager = JobManager(settings, sqlite, engine, ServiceMetrics(), max_concurrent=1)
    job = Job(id="job-1", course_id="c", analysis={}, input_digest="d", status="running", created_at=1.0)
    store = _BusyThenDone(job)
    request = Request({"type": "http", "method": "GET", "path": "/v1/jobs/job-1/events", "headers": []})
    try:
        response = event_stream(store, manager, job, request)  # type: ignore[arg-type]
        chunks = [chunk async for chunk in response.body_iterator]
    finally:
        await sqlite.close()
    events = [str(c).split("\n", 1)[0] for c in chunks]
    assert events == ["event: snapshot", "event: status"]
    assert '"completed"' in str(chunks[-1]) and store.asked == 3
