"""The stores under contention: a job whose writes find the PostgreSQL pool's connections all
taken, or the SQLite file locked by another process's connection, waits and completes (it does
not fail on `PoolTimeout` or "database is locked"), and gives up after its patience with
`StoreBusy`; the lease renewal and the batched progress save, both updating many job rows,
never deadlock."""

from __future__ import annotations

import asyncio
import random
import sqlite3
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from psycopg_pool import PoolTimeout

from courseforge.config import Settings
from courseforge.domain import AnalysisResult
from courseforge.jobs import InProcessRunner, new_job
from courseforge.storage import Checkpoint, Job, PostgresStore, SQLiteStore, StoreBusy
from courseforge.storage._postgres import transient
from courseforge.storage._sqlite import transient as sqlite_transient
from engine_helpers import make_engine, scripted_models
from store_helpers import holding, no_wait, poll, pool_taken


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
    holder = asyncio.create_task(holding(store, release))
    await pool_taken(store)
    runner = asyncio.create_task(
        InProcessRunner(make_engine(settings, scripted_models(settings)), store).run(job, analysis=analysis)
    )
    await poll(lambda: store.retried["wait"] >= 3, "the job's writes to time out on the pool")
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
    store = PostgresStore(pg_url, max_size=1, wait_s=0.1, retry_s=0.5, sleep=no_wait)
    await store.init()
    release = asyncio.Event()
    holder = asyncio.create_task(holding(store, release))
    try:
        await pool_taken(store)
        with pytest.raises(StoreBusy, match=r"busy for 0.5 s; last failure: PoolTimeout") as raised:
            await store.update_job("nope", status="failed")
        assert isinstance(raised.value.__cause__, PoolTimeout)
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


# -- SQLite: another process's connection holds the file's write lock -------------------------


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "store.db")


@pytest.fixture
def other_process(db_path: str) -> Iterator[sqlite3.Connection]:
    """A second connection to the file, as another process's would be (autocommit: the test
    begins and ends its transaction itself)."""
    conn = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
    try:
        yield conn
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        conn.close()


async def _sqlite_store(db_path: str, *, retry_s: float = 600.0) -> SQLiteStore:
    """A store whose statements wait 0.1 s for the lock before "database is locked"."""
    store = SQLiteStore(db_path, busy_timeout_s=0.1, retry_s=retry_s, sleep=no_wait)
    await store.init()
    return store


def _checkpoint(job_id: str, step: str) -> Checkpoint:
    return Checkpoint(
        job_id=job_id,
        step_key=step,
        request_digest="d",
        model="m",
        text="answer",
        input_tokens=1,
        output_tokens=2,
        cached_tokens=0,
        cost_usd=Decimal("0.01"),
        cost_source="price",
        latency_ms=1.0,
        created_at=1.0,
    )


def test_which_sqlite_failures_are_transient(db_path: str, other_process: sqlite3.Connection) -> None:
    other_process.execute("CREATE TABLE t (x INTEGER)")
    other_process.execute("BEGIN IMMEDIATE")
    locked = sqlite3.connect(db_path, timeout=0)
    try:
        with pytest.raises(sqlite3.OperationalError) as raised:
            locked.execute("BEGIN IMMEDIATE")
    finally:
        locked.close()
    assert "locked" in str(raised.value)
    assert sqlite_transient(raised.value) == "wait"
    assert sqlite_transient(sqlite3.OperationalError("no such table: t")) == ""
    with pytest.raises(sqlite3.OperationalError) as no_table:
        other_process.execute("SELECT * FROM missing")
    assert sqlite_transient(no_table.value) == ""
    assert sqlite_transient(sqlite3.IntegrityError("UNIQUE constraint failed")) == ""


async def test_a_checkpoint_write_waits_out_a_lock_held_past_the_busy_timeout(
    db_path: str, other_process: sqlite3.Connection
) -> None:
    """The other connection holds `BEGIN IMMEDIATE` while the store writes a checkpoint: the
    write fails "database is locked" after each 0.1 s busy timeout, is tried again, and goes
    through once the lock is released; the checkpoint is stored once."""
    store = await _sqlite_store(db_path)
    try:
        await store.create_job(Job(id="job-1", course_id="c", analysis={}, input_digest="d", created_at=1.0))
        other_process.execute("BEGIN IMMEDIATE")
        write = asyncio.create_task(store.put_checkpoint(_checkpoint("job-1", "p/t/1/0")))
        await poll(lambda: store.retried["wait"] >= 3, "the write to find the file locked three times")
        assert not write.done()
        other_process.execute("COMMIT")
        await asyncio.wait_for(write, 60)
        rows = await store._fetch("SELECT COUNT(*) FROM checkpoints WHERE job_id = ?", ("job-1",))
        assert rows[0][0] == 1
        assert list(await store.load_checkpoints("job-1")) == ["p/t/1/0"]
    finally:
        await store.close()


async def test_a_sqlite_job_waits_out_another_processs_lock_and_completes(
    db_path: str, other_process: sqlite3.Connection, settings: Settings, analysis: AnalysisResult
) -> None:
    """A whole job starts while another connection holds the write lock: its writes fail
    "database is locked" again and again, wait, and go through once the lock is released; the
    job completes with each paid call's checkpoint stored once."""
    store = await _sqlite_store(db_path)
    try:
        job, _ = await store.create_job(new_job("job-1", analysis))
        other_process.execute("BEGIN IMMEDIATE")
        runner = asyncio.create_task(
            InProcessRunner(make_engine(settings, scripted_models(settings)), store).run(
                job, analysis=analysis
            )
        )
        await poll(lambda: store.retried["wait"] >= 3, "the job's writes to find the file locked")
        assert not runner.done()
        other_process.execute("COMMIT")
        result = await asyncio.wait_for(runner, 120)
        assert result.course is not None
        stored = await store.get_job("job-1")
        assert stored is not None and stored.status == "completed" and stored.error == ""
        paid = [c for c in result.report.calls if c.outcome in ("ok", "rejected")]
        rows = await store._fetch("SELECT COUNT(*) FROM checkpoints WHERE job_id = ?", ("job-1",))
        assert rows[0][0] == len(await store.load_checkpoints("job-1")) == len(paid) > 0
    finally:
        await store.close()


async def test_a_sqlite_write_gives_up_after_its_patience_and_stores_nothing(
    db_path: str, other_process: sqlite3.Connection
) -> None:
    store = await _sqlite_store(db_path, retry_s=0.5)
    try:
        other_process.execute("BEGIN IMMEDIATE")
        with pytest.raises(
            StoreBusy, match=r"busy for 0.5 s; last failure: OperationalError: database is locked"
        ):
            await store.put_checkpoint(_checkpoint("job-1", "p/t/1/0"))
        assert store.retried["wait"] >= 1
        other_process.execute("COMMIT")
        assert await store.load_checkpoints("job-1") == {}
    finally:
        await store.close()


async def test_a_serving_view_shares_the_connection_and_gives_up_sooner(
    db_path: str, other_process: sqlite3.Connection
) -> None:
    """A request's view of the store (`serving`) gives up after its own patience while the
    store's write, on the same connection, waits on and goes through."""
    store = await _sqlite_store(db_path)
    view = store.serving(0.3)
    try:
        await store.create_job(Job(id="job-1", course_id="c", analysis={}, input_digest="d", created_at=1.0))
        other_process.execute("BEGIN IMMEDIATE")
        write = asyncio.create_task(store.put_checkpoint(_checkpoint("job-1", "p/t/1/0")))
        with pytest.raises(StoreBusy, match=r"busy for 0.3 s"):
            await view.update_job("job-1", status="failed")
        assert not write.done()
        other_process.execute("COMMIT")
        await asyncio.wait_for(write, 60)
        assert list(await view.load_checkpoints("job-1")) == ["p/t/1/0"]
        job = await view.get_job("job-1")
        assert job is not None and job.status == "queued"  # the view's write stored nothing
    finally:
        await store.close()


async def test_a_serving_view_waits_for_the_lock_no_longer_than_its_patience(
    db_path: str, other_process: sqlite3.Connection
) -> None:
    """The store waits 30 s for the lock in each try (its busy timeout); a request's view of it
    waits its own 0.3 s, then gives up, and the store's next statement has its 30 s again."""
    store = SQLiteStore(db_path, sleep=no_wait)
    await store.init()
    view = store.serving(0.3)
    try:
        other_process.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreBusy, match=r"busy for 0.3 s"):
            await asyncio.wait_for(view.update_job("job-1", status="failed"), 20)
        other_process.execute("COMMIT")
        rows = await store._fetch("PRAGMA busy_timeout")
        assert rows == [(30000,)]
    finally:
        await store.close()
