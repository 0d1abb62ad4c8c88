"""A busy store, as a request sees it: on the real PostgreSQL, with the pool's only connection
taken, an API read is answered 503 with Retry-After after `service.request_store_wait_s`, while
a job's write on the same store keeps waiting and goes through once the connection is free."""

from __future__ import annotations

import asyncio

import httpx
from service_helpers import AUTH, TOKEN

from courseforge.config import Settings
from courseforge.service import create_app
from courseforge.storage import Job, PostgresStore
from engine_helpers import make_engine, scripted_models
from store_helpers import holding, poll, pool_taken


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
    holder = asyncio.create_task(holding(store, release))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://courseforge.test") as client:
        try:
            await pool_taken(store)
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
        finally:
            release.set()
            await holder
        await asyncio.wait_for(write, 60)
        answered = await client.get("/v1/jobs/job-1", headers=AUTH)
        assert answered.status_code == 200
        assert answered.json()["status"] == "failed" and answered.json()["error"] == "stopped by hand"
