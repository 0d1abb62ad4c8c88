"""Checkpoints written by an earlier release still replay: a store's step keys and request
digests are a protocol (domain/tasks.py). The data file holds every checkpoint of one durable
job run by main at commit efbc581 (before task ids became a type): the photosynthesis example on
the hosted profile with the shipped `CourseAuthor` double, gated with the hashing embedder —
28 calls, lessons retried and escalated, judge and stronger-judge calls."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from courseforge.jobs import InProcessRunner, new_job
from courseforge.storage import Checkpoint, SQLiteStore
from engine_helpers import example_analysis, hosted_settings, make_engine, scripted_models

DATA = Path(__file__).parent / "data" / "checkpoints-efbc581.jsonl"


def old_checkpoints(job_id: str) -> list[Checkpoint]:
    rows = [json.loads(line) for line in DATA.read_text("utf-8").splitlines() if line.strip()]
    return [Checkpoint(**{**row, "job_id": job_id, "cost_usd": Decimal(row["cost_usd"])}) for row in rows]


async def test_a_store_written_by_the_previous_release_replays_every_call(tmp_path: Path) -> None:
    settings = hosted_settings()
    analysis = example_analysis("photosynthesis-sourced")
    store = SQLiteStore(str(tmp_path / "jobs.db"))
    await store.init()
    job, _ = await store.create_job(new_job("resumed", analysis))
    saved = old_checkpoints(job.id)
    for cp in saved:
        await store.put_checkpoint(cp)
    models = scripted_models(settings)
    engine = make_engine(settings, models)
    try:
        result = await InProcessRunner(engine, store).run(job, analysis=analysis)
    finally:
        await engine.aclose()
        await store.close()
    report = result.report
    assert sum(m.calls for m in models.values()) == 0  # nothing sent: every call replayed
    assert len(report.calls) == len(saved) == 28
    assert all(c.replayed for c in report.calls)
    assert report.summary["replayed_calls"] == 28
    assert report.summary["paid_this_run_usd"] == 0
    assert report.total_cost_usd == sum((cp.cost_usd for cp in saved), Decimal(0))
    assert report.status == "needs_review" and result.course is not None
