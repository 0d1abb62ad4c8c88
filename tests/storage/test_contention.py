"""The PostgreSQL store under contention: a job whose writes find the pool's connections all
taken waits and completes (it does not fail on `PoolTimeout`), and the lease renewal and the
batched progress save, both updating many job rows, never deadlock."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from psycopg_pool import PoolTimeout

from courseforge.config import Settings
from courseforge.domain import AnalysisResult
from courseforge.jobs import InProcessRunner, new_job
from courseforge.storage import Job, PostgresStore
from courseforge.storage._postgres import transient
from courseforge.testing.postgres import create_database
from engine_helpers import make_engine, scripted_models


async def _no_wait(_: float) -> None:
    """The store's backoff, without sleeping (the pool's own short wait paces the retries)."""


@pytest.fixture
async def pg_url(pg_base_url: str) -> str:
    return create_database(pg_base_url)


@pytest.fixture
async def one_connection(pg_url: str) -> AsyncIterator[PostgresStore]:
    """A store whose pool has one connection, and a wait for it of 0.2 s."""
    store = PostgresStore(pg_url, max_size=1, wait_s=0.2, sleep=_no_wait)
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
    """Hold the pool's only connection until `release` is set."""
    pool = await store._open()
    async with pool.connection():
        await release.wait()


def test_which_failures_are_transient() -> None:
    assert transient(PoolTimeout("no connection")) == "wait"
    assert transient(psycopg.OperationalError("server closed the connection")) == "wait"
    assert transient(psycopg.errors.DeadlockDetected("deadlock")) == "once"
    assert transient(psycopg.errors.SerializationFailure("serialization")) == "once"
    assert transient(psycopg.errors.AdminShutdown("terminating")) == "wait"
    assert transient(psycopg.errors.UniqueViolation("duplicate")) == ""
    assert transient(psycopg.errors.InvalidCatalogName("no such database")) == ""
    assert transient(ValueError("bad")) == ""


async def test_a_job_waits_for_the_pools_only_connection_and_completes(
    one_connection: PostgresStore, settings: Settings, analysis: AnalysisResult
) -> None:
    """Another task holds the pool's one connection while the job starts: its store writes time
    out on the pool (0.2 s) again and again, wait, and go through once the connection is free;
    every checkpoint is stored once."""
    store = one_connection
    job, _ = await store.create_job(new_job("job-1", analysis))
    release = asyncio.Event()
    holder = asyncio.create_task(_holding(store, release))
    await _poll(lambda: store._pool.get_stats().get("pool_available", 1) == 0, "the holder's connection")
    runner = asyncio.create_task(
        InProcessRunner(make_engine(settings, scripted_models(settings)), store).run(job, analysis=analysis)
    )
    await _poll(lambda: store.retried["wait"] >= 3, "the job's writes to time out on the pool")
    assert not runner.done()
    release.set()
    await holder
    result = await asyncio.wait_for(runner, 120)
    assert result.course is not None
    stored = await store.get_job("job-1")
    assert stored is not None and stored.status == "completed" and stored.error == ""
    paid = [c for c in result.report.calls if c.outcome in ("ok", "rejected")]
    checkpoints = await store.load_checkpoints("job-1")
    assert len(checkpoints) == len(paid) > 0
    rows = await store._fetch("SELECT COUNT(*) FROM checkpoints WHERE job_id = ?", ("job-1",))
    assert rows[0][0] == len(paid)


async def test_a_write_gives_up_after_its_patience(pg_url: str) -> None:
    store = PostgresStore(pg_url, max_size=1, wait_s=0.1, retry_s=0.5, sleep=_no_wait)
    await store.init()
    release = asyncio.Event()
    holder = asyncio.create_task(_holding(store, release))
    try:
        await _poll(lambda: store._pool.get_stats().get("pool_available", 1) == 0, "the holder's connection")
        with pytest.raises(PoolTimeout):
            await store.update_job("nope", status="failed")
        assert store.retried["wait"] >= 1
    finally:
        release.set()
        await holder
        await store.close()


async def test_lease_renewal_and_progress_saves_never_deadlock(pg_url: str) -> None:
    """Two processes' stores: one renews its claims on 60 running jobs while the other saves
    those jobs' progress in one transaction, in shuffled orders, 40 rounds of 4 at once. Before
    both took the rows in id order, PostgreSQL reported `DeadlockDetected` here."""
    renewer = PostgresStore(pg_url, max_size=4, retry_s=0)
    saver = PostgresStore(pg_url, max_size=4, retry_s=0)
    await renewer.init()
    await saver.init()
    try:
        ids = [f"job-{i:03d}" for i in range(60)]
        for job_id in ids:
            await renewer.create_job(
                Job(id=job_id, course_id="c", analysis={}, input_digest="d", created_at=1.0)
            )
            await renewer.start_run(job_id)
            assert await renewer.claim_job(job_id, "A", until=100, now=1)
        rng = random.Random(7)
        for round_no in range(40):
            order = ids[:]
            rng.shuffle(order)
            progress = {job_id: {"round": round_no} for job_id in order}
            await asyncio.gather(
                renewer.renew_claims("A", until=200 + round_no),
                saver.save_progress(progress),
                renewer.renew_claims("A", until=200 + round_no),
                saver.save_progress(dict(reversed(progress.items()))),
            )
        assert renewer.retried["once"] == saver.retried["once"] == 0  # no deadlock even retried
        job = await saver.get_job("job-059")
        assert job is not None and job.progress == {"round": 39}
        assert await saver.job_claim("job-059") == ("A", 239)
    finally:
        await renewer.close()
        await saver.close()
