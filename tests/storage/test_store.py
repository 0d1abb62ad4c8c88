"""The Store contract, run against SQLite and a real PostgreSQL server."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest

from courseforge.errors import ConfigError
from courseforge.storage import (
    MIGRATIONS,
    Checkpoint,
    Job,
    PostgresStore,
    ReviewItem,
    SQLiteStore,
    Store,
    StoreConflict,
    _sql,
    masked_url,
    open_store,
)
from courseforge.testing.postgres import create_database


def _job(job_id: str = "j1", key: str | None = None) -> Job:
    return Job(id=job_id, course_id="c1", analysis={"topic": "x"}, input_digest="d", idempotency_key=key)


def _cp(step: str, text: str = "answer", cost: str = "0.00012345") -> Checkpoint:
    return Checkpoint(
        job_id="j1",
        step_key=step,
        request_digest="r",
        model="m",
        text=text,
        input_tokens=10,
        output_tokens=20,
        cached_tokens=0,
        cost_usd=Decimal(cost),
        cost_source="price_table",
        latency_ms=12.5,
        reasoning_tokens=7,
        cache_write_tokens=3,
        native_finish_reason="STOP",
    )


async def test_migrations_apply_once(store: Store) -> None:
    assert await store.schema_version() == MIGRATIONS[-1][0]
    await store.init()  # again: nothing to do, no error
    assert await store.schema_version() == MIGRATIONS[-1][0]


async def test_jobs_roundtrip_and_idempotency(store: Store) -> None:
    _, created = await store.create_job(_job("j1", key="k1"))
    assert created
    again, created = await store.create_job(_job("j2", key="k1"))
    assert not created and again.id == "j1"
    same_id, created = await store.create_job(_job("j1"))
    assert not created and same_id.id == "j1"
    await store.create_job(_job("j3"))
    assert (await store.find_job_by_key("k1")).id == "j1"  # type: ignore[union-attr]
    assert await store.start_run("j1") == 1
    assert await store.start_run("j1") == 2
    await store.update_job("j1", progress={"phases": {"lessons": {"done": 3}}}, cancel_requested=True)
    got = await store.get_job("j1")
    assert got is not None and got.status == "running" and got.runs == 2 and got.cancel_requested
    assert got.progress["phases"]["lessons"]["done"] == 3 and got.analysis == {"topic": "x"}
    assert {j.id for j in await store.list_jobs(status="running")} == {"j1"}
    assert len(await store.list_jobs()) == 2
    assert len(await store.list_jobs(limit=1)) == 1
    with pytest.raises(ValueError, match="cannot update"):
        await store.update_job("j1", analysis={})
    assert await store.get_job("nope") is None


async def test_checkpoints_keep_exact_money_and_overwrite(store: Store) -> None:
    await store.put_checkpoint(_cp("lessons/lesson:S1-L1/1/cheap"))
    await store.put_checkpoint(_cp("metadata/metadata_core/1/premium", cost="0.1"))
    await store.put_checkpoint(_cp("metadata/metadata_core/1/premium", text="newer", cost="0.2"))
    cps = await store.load_checkpoints("j1")
    assert set(cps) == {"lessons/lesson:S1-L1/1/cheap", "metadata/metadata_core/1/premium"}
    assert cps["lessons/lesson:S1-L1/1/cheap"].cost_usd == Decimal("0.00012345")
    assert cps["metadata/metadata_core/1/premium"].text == "newer"
    back = cps["lessons/lesson:S1-L1/1/cheap"]
    assert back == replace(_cp("lessons/lesson:S1-L1/1/cheap"), created_at=back.created_at)  # every field
    assert await store.load_checkpoints("other") == {}


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_a_store_of_the_previous_schema_migrates_and_its_checkpoints_replay_with_zeros(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Version 4 added the reasoning tokens, cache writes and native finish reason to the
    checkpoints and the response cache: a store written at version 3 keeps its rows, which read
    back with 0 / ""; new rows keep the values."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path}/old.db"
    else:
        url = create_database(request.getfixturevalue("pg_base_url"))
    old = open_store(url)
    with monkeypatch.context() as m:
        m.setattr(_sql, "MIGRATIONS", [mig for mig in MIGRATIONS if mig[0] <= 3])
        await old.init()
        assert await old.schema_version() == 3
        await old._transaction(  # type: ignore[attr-defined]
            [
                (
                    "INSERT INTO checkpoints (job_id, step_key, request_digest, model, text, input_tokens, "
                    "output_tokens, cached_tokens, cost_usd, cost_source, latency_ms, created_at) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    ("j1", "old", "r", "m", "answer", 10, 20, 0, "0.001", "price_table", 1.0, 1.0),
                )
            ]
        )
    await old.close()
    store = open_store(url)
    await store.init()
    try:
        assert await store.schema_version() == MIGRATIONS[-1][0] >= 4
        await store.put_checkpoint(_cp("new"))
        cps = await store.load_checkpoints("j1")
    finally:
        await store.close()
    assert (cps["old"].reasoning_tokens, cps["old"].cache_write_tokens, cps["old"].native_finish_reason) == (
        0,
        0,
        "",
    )
    assert cps["old"].cost_usd == Decimal("0.001") and cps["old"].text == "answer"
    assert cps["new"].reasoning_tokens == 7 and cps["new"].native_finish_reason == "STOP"


async def test_concurrent_checkpoint_writes(store: Store) -> None:
    await asyncio.gather(*(store.put_checkpoint(_cp(f"lessons/l{i}/1/cheap")) for i in range(50)))
    assert len(await store.load_checkpoints("j1")) == 50


async def test_results_calls_and_review_queue(store: Store) -> None:
    await store.create_job(_job("j1"))
    reviews = [
        ReviewItem(id="j1:S1-L1", job_id="j1", target="S1-L1", reason="similarity low", uncertainty=0.2),
        ReviewItem(id="j1:S1-L2", job_id="j1", target="S1-L2", reason="borderline", uncertainty=0.9),
    ]
    calls = [
        {"phase": "metadata", "task": "metadata_core", "attempt": 1, "tier": "premium", "replayed": True}
    ]
    await store.save_result(
        "j1",
        run=2,
        status="completed",
        course={"course_id": "c1"},
        report={"total_cost_usd": 0.1},
        calls=calls,
        reviews=reviews,
        course_status="needs_review",
    )
    job = await store.get_job("j1")
    assert job is not None and job.status == "completed" and job.course_status == "needs_review"
    assert await store.get_course("j1") == {"course_id": "c1"}
    assert (await store.get_report("j1")) == {"total_cost_usd": 0.1}
    stored = await store.list_calls("j1")
    assert [(c.run, c.step_key, c.replayed) for c in stored] == [
        (2, "metadata/metadata_core/1/premium", True)
    ]
    queue = await store.list_reviews()
    assert [r.target for r in queue] == ["S1-L2", "S1-L1"]  # most uncertain first
    await store.update_review("j1:S1-L2", status="approved", resolution={"action": "approve"})
    assert [r.target for r in await store.list_reviews()] == ["S1-L1"]
    item = await store.get_review("j1:S1-L2")
    assert item is not None and item.status == "approved" and item.resolution == {"action": "approve"}
    assert await store.get_course("nope") is None


async def test_save_revision_appends_calls_and_answers_the_item(store: Store) -> None:
    await store.create_job(_job("j1"))
    item = ReviewItem(id="j1:S1-L1", job_id="j1", target="S1-L1", reason="drifted", uncertainty=0.5)
    first = [{"phase": "lessons", "task": "lesson:S1-L1", "attempt": k, "tier": "cheap"} for k in (1, 2)]
    await store.save_result(
        "j1",
        run=1,
        status="completed",
        course={"v": 1},
        report={"v": 1},
        calls=first,
        reviews=[item],
        course_status="needs_review",
    )
    await store.update_review(item.id, status="regenerating", resolution={"note": "n"})
    revision = [{"phase": "review", "task": "lesson:S1-L1/review-x-1", "attempt": 1, "tier": "cheap"}]
    await store.save_revision(
        "j1",
        run=1,
        course={"v": 2},
        course_status="approved",
        report={"v": 2},
        calls=revision,
        review_id=item.id,
        review_status="regenerated",
        review_reason="drifted",
        resolution={"note": "n", "history": [{"status": "accepted"}]},
    )
    assert await store.get_course("j1") == {"v": 2} and await store.get_report("j1") == {"v": 2}
    stored = await store.list_calls("j1")
    assert [(c.seq, c.step_key) for c in stored] == [
        (0, "lessons/lesson:S1-L1/1/cheap"),
        (1, "lessons/lesson:S1-L1/2/cheap"),
        (2, "review/lesson:S1-L1/review-x-1/1/cheap"),  # appended after the run's calls
    ]
    await store.create_job(_job("j2"))
    other = ReviewItem(id="j2:S1-L1", job_id="j2", target="S1-L1", reason="drifted", uncertainty=0.9)
    await store.save_result("j2", run=1, status="completed", course={}, report={}, calls=[], reviews=[other])
    assert [r.id for r in await store.list_reviews(status="open", job_id="j2")] == ["j2:S1-L1"]
    assert await store.list_reviews(status="open", job_id="j1") == []
    assert [r.id for r in await store.list_reviews(status=None, job_id="j1")] == [item.id]
    answered = await store.get_review(item.id)
    assert answered is not None and answered.status == "regenerated"
    assert answered.resolution["history"] == [{"status": "accepted"}]
    job = await store.get_job("j1")
    assert job is not None and job.course_status == "approved"


def test_open_store_urls(tmp_path: Path) -> None:
    assert isinstance(open_store(f"sqlite:///{tmp_path}/a.db"), SQLiteStore)
    assert isinstance(open_store("postgresql://u@127.0.0.1:5/db"), PostgresStore)
    # The pool's bound comes from storage.pool_size (a service of many courses queues on it).
    assert open_store("postgresql://u@127.0.0.1:5/db")._max_size == 10  # type: ignore[attr-defined]
    assert open_store("postgresql://u@127.0.0.1:5/db", pool_size=40)._max_size == 40  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match=r"storage\.url"):
        open_store("mysql://x:secret@h/db")
    assert masked_url("postgresql://user:s3cret@host/db") == "postgresql://user:****@host/db"
    assert "s3cret" not in repr(open_store("postgresql://user:s3cret@host/db"))


async def test_sqlite_file_created_on_first_use(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "dir" / "cf.db"
    s = open_store(f"sqlite:///{path}")
    await s.init()
    await s.close()
    assert path.exists()


async def _with_reviews(store: Store, n: int) -> list[ReviewItem]:
    await store.create_job(_job("j1"))
    items = [ReviewItem(id=f"j1:{i}", job_id="j1", target=f"S1-L{i}", reason="r") for i in range(n)]
    await store.save_result(
        "j1", run=1, status="completed", course={"v": 0}, report={}, calls=[], reviews=items
    )
    return items


async def test_concurrent_answers_to_one_item_exactly_one_wins(store: Store) -> None:
    (item,) = await _with_reviews(store, 1)

    async def answer(n: int) -> str:
        try:
            await store.answer_review(item.id, expect_status="open", status="approved", resolution={"by": n})
        except StoreConflict as conflict:
            return conflict.what
        return "won"

    outcomes = await asyncio.gather(*(answer(n) for n in range(10)))
    assert sorted(outcomes) == ["review"] * 9 + ["won"]
    stored = await store.get_review(item.id)
    assert stored is not None and stored.resolution["by"] == outcomes.index("won")


async def test_a_course_write_at_a_stale_version_changes_nothing(store: Store) -> None:
    items = await _with_reviews(store, 2)
    stored = await store.get_course_version("j1")
    assert stored == ({"v": 0}, 0)
    await store.answer_review(
        items[0].id, expect_status="open", status="edited", resolution={}, course=("j1", {"v": 1}, "", 0)
    )
    assert await store.get_course_version("j1") == ({"v": 1}, 1)
    with pytest.raises(StoreConflict) as lost:
        await store.answer_review(
            items[1].id, expect_status="open", status="edited", resolution={}, course=("j1", {"v": 2}, "", 0)
        )
    assert lost.value.what == "course"
    # Rolled back whole: neither the course nor the item changed.
    assert await store.get_course_version("j1") == ({"v": 1}, 1)
    second = await store.get_review(items[1].id)
    assert second is not None and second.status == "open"
    with pytest.raises(StoreConflict):
        await store.update_course("j1", {"v": 3}, course_status="", expected_version=0)
    await store.update_course("j1", {"v": 3}, course_status="", expected_version=1)
    assert await store.get_course_version("j1") == ({"v": 3}, 2)


async def test_concurrent_course_writes_at_one_version_exactly_one_lands(store: Store) -> None:
    await _with_reviews(store, 0)

    async def write(n: int) -> bool:
        try:
            await store.update_course("j1", {"v": n}, course_status="", expected_version=0)
        except StoreConflict:
            return False
        return True

    landed = await asyncio.gather(*(write(n) for n in range(8)))
    assert landed.count(True) == 1
    assert await store.get_course_version("j1") == ({"v": landed.index(True)}, 1)


async def test_jobs_reviews_and_idempotency_keys_are_scoped_to_the_tenant(store: Store) -> None:
    a = Job(id="ja", course_id="c", analysis={}, input_digest="d", idempotency_key="k", tenant="acme")
    b = Job(id="jb", course_id="c", analysis={}, input_digest="d", idempotency_key="k", tenant="globex")
    assert (await store.create_job(a))[1] and (await store.create_job(b))[1]  # same key, two tenants
    found = await store.find_job_by_key("k", tenant="globex")
    assert (
        found is not None and found.id == "jb" and found.idempotency_key == "k" and found.tenant == "globex"
    )
    assert await store.find_job_by_key("k") is None
    again, created = await store.create_job(
        Job(id="jc", course_id="c", analysis={}, input_digest="d", idempotency_key="k", tenant="acme")
    )
    assert not created and again.id == "ja"
    assert [j.id for j in await store.list_jobs(tenant="acme")] == ["ja"]
    assert {j.id for j in await store.list_jobs()} == {"ja", "jb"}
    for job_id in ("ja", "jb"):
        item = ReviewItem(id=f"{job_id}:S1-L1", job_id=job_id, target="S1-L1", reason="r")
        await store.save_result(
            job_id, run=1, status="completed", course={}, report={}, calls=[], reviews=[item]
        )
    assert [r.job_id for r in await store.list_reviews(tenant="globex")] == ["jb"]
    assert len(await store.list_reviews()) == 2


async def test_report_costs_reads_cost_and_budget_of_many_jobs_in_one_call(store: Store) -> None:
    for job_id in ("j1", "j2", "j3"):
        await store.create_job(_job(job_id))
    for job_id, cost in (("j1", 0.125), ("j2", "0.5")):  # a Decimal's str, as reports keep it
        await store.save_result(
            job_id,
            run=1,
            status="completed",
            course={"course_id": "c1"},
            report={"total_cost_usd": cost, "budget_usd": 2.0, "calls": [{"x": 1}]},
            calls=[],
        )
    assert await store.report_costs(["j1", "j2", "j3", "nope"]) == {"j1": (0.125, 2.0), "j2": (0.5, 2.0)}
    assert await store.report_costs([]) == {}


async def test_ping_answers_while_every_pooled_connection_is_taken(pg_base_url: str) -> None:
    """`/health` pings the store: running jobs holding the whole pool must not keep it waiting."""
    store = PostgresStore(create_database(pg_base_url), max_size=2)
    await store.init()
    try:
        pool = await store._open()
        async with pool.connection(), pool.connection():  # every connection of the pool taken
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(store.schema_version(), 1.0)  # a pooled query waits
            await asyncio.wait_for(store.ping(), 30.0)
        assert store._ping_conn is not None
        await store._ping_conn.close()  # a dropped connection: the next ping opens another
        await asyncio.wait_for(store.ping(), 30.0)
    finally:
        await store.close()
    assert store._ping_conn is None


async def test_ping_raises_when_the_store_is_gone(tmp_path: Path) -> None:
    store = PostgresStore("postgresql://nobody@127.0.0.1:1/none")
    with pytest.raises(Exception, match=r"connect|refused|failed"):
        await store.ping()
    assert store._ping_conn is None
