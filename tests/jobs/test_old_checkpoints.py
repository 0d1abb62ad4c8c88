"""Checkpoints written by an earlier release still replay: a store's step keys and request
digests are a protocol (domain/tasks.py). The data file holds every checkpoint of one durable
job run by main at commit efbc581 (before task ids became a type): the photosynthesis example on
the hosted profile with the shipped `CourseAuthor` double, gated with the hashing embedder —
28 calls, lessons retried and escalated, judge and stronger-judge calls.

Gates added since then may judge a replayed answer differently and so ask for a call the old
run never made (a retry with new feedback): that call is paid, rightly. What must never happen
is paying again for a request the old store already holds, or answering a request that changed
(the lesson prompt was rewritten since: issue 13) with the old answer to another request."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from courseforge.engine import request_digest
from courseforge.jobs import InProcessRunner, new_job
from courseforge.storage import Checkpoint, SQLiteStore
from engine_helpers import example_analysis, hosted_settings, make_engine, scripted_models

DATA = Path(__file__).parent / "data" / "checkpoints-efbc581.jsonl"


def old_checkpoints(job_id: str) -> list[Checkpoint]:
    rows = [json.loads(line) for line in DATA.read_text("utf-8").splitlines() if line.strip()]
    return [Checkpoint(**{**row, "job_id": job_id, "cost_usd": Decimal(row["cost_usd"])}) for row in rows]


async def test_a_store_written_by_the_previous_release_replays_every_unchanged_call(tmp_path: Path) -> None:
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
    held = {(cp.model, cp.request_digest) for cp in saved}
    sent = [(m, request_digest(m, r)) for m, model in models.items() for r in model.requests]
    assert not [s for s in sent if s in held]  # nothing the old store holds was sent again
    replayed = [c for c in report.calls if c.replayed]
    assert len(replayed) == report.summary["replayed_calls"] >= 1
    # The critical metadata call and the extras, whose requests did not change, replay under the
    # step keys the old release wrote (the extras start on the mid tier again: seed 000's
    # non-critical fields try OSS 120B first; issue 26); the lessons, whose prompt changed
    # (issue 13), are asked again and never answered from a checkpoint that holds the answer to
    # the old prompt.
    replayed_keys = {f"{c.phase}/{c.task}/{c.attempt}/{c.tier}" for c in replayed}
    for cp in saved:
        if cp.step_key in ("metadata/metadata_core/1/premium", "metadata/metadata_extras/1/mid"):
            assert cp.step_key in replayed_keys, cp.step_key
        else:
            assert cp.step_key not in replayed_keys, cp.step_key
    assert any(c.phase == "lessons" and not c.replayed for c in report.calls)
    assert report.summary["replayed_cost_usd"] == pytest.approx(
        float(sum((c.cost_usd for c in replayed), Decimal(0)))
    )
    assert result.course is not None
