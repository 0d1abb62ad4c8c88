"""Durable jobs: finished calls are checkpointed and replayed, never paid twice."""

from __future__ import annotations

import asyncio
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from courseforge.config import Settings
from courseforge.domain import AnalysisResult
from courseforge.errors import UserError
from courseforge.jobs import InProcessRunner, generate_durably, new_job, resolve_job, revise_review
from courseforge.providers import ChatRequest
from courseforge.storage import Store, open_store
from courseforge.testing import CourseAuthor, ScriptedModel
from engine_helpers import make_engine, scripted_models


def _steps(models: dict[str, ScriptedModel]) -> Counter[str]:
    """Requests each model received, keyed by (model, phase/task) + prompt digest."""
    seen: Counter[str] = Counter()
    for mid, model in models.items():
        for r in model.requests:
            seen[f"{mid}|{r.tags.get('task')}|{hash(tuple(m.content for m in r.messages))}"] += 1
    return seen


@pytest.fixture
async def store(tmp_path: Path) -> Store:
    s = open_store(f"sqlite:///{tmp_path}/jobs.db")
    await s.init()
    return s


async def test_second_run_replays_everything_for_free(
    store: Store, settings: Settings, analysis: AnalysisResult
) -> None:
    models = scripted_models(settings)
    engine = make_engine(settings, models)
    job, _ = await store.create_job(new_job("job-1", analysis))
    first = await InProcessRunner(engine, store).run(job, analysis=analysis)
    calls_first = sum(m.calls for m in models.values())
    assert first.course is not None and calls_first > 0
    assert first.report.summary["replayed_calls"] == 0
    assert len(await store.load_checkpoints("job-1")) == sum(
        1 for c in first.report.calls if c.outcome in ("ok", "rejected")
    )

    second = await InProcessRunner(engine, store).run(job, analysis=analysis)
    assert sum(m.calls for m in models.values()) == calls_first  # not one provider call more
    assert second.course is not None
    assert second.course.model_dump() == first.course.model_dump()
    assert all(c.replayed for c in second.report.calls)
    # Total = the course's cost (each call once); none of it paid by this run.
    assert second.report.total_cost_usd == first.report.total_cost_usd
    assert second.report.summary["paid_this_run_usd"] == 0
    assert Decimal(str(second.report.summary["replayed_cost_usd"])) == pytest.approx(
        first.report.total_cost_usd
    )
    stored = await store.list_calls("job-1")
    assert {c.run for c in stored} == {1, 2}
    job_after = await store.get_job("job-1")
    assert job_after is not None and job_after.status == "completed" and job_after.runs == 2
    assert job_after.progress["phases"]["completeness"]["state"] == "done"


async def test_interrupted_run_resumes_without_repeating_finished_calls(
    store: Store, settings: Settings, analysis: AnalysisResult
) -> None:
    # Reference: a clean run's calls.
    clean_models = scripted_models(settings)
    clean = await make_engine(settings, clean_models).generate(analysis)
    clean_calls = sum(m.calls for m in clean_models.values())

    # Interrupted run: the 8th lesson call hangs until the job task is cancelled (a dying process).
    started = asyncio.Event()
    count = {"lessons": 0}
    author = CourseAuthor()

    async def script(request: ChatRequest) -> str:
        if request.tags.get("phase") == "lessons":
            count["lessons"] += 1
            if count["lessons"] >= 8:
                started.set()
                await asyncio.sleep(3600)
        return author(request)

    models = {m: ScriptedModel(script, model_id=m) for m in settings.models}
    engine = make_engine(settings, models)
    job, _ = await store.create_job(new_job("job-2", analysis))
    task = asyncio.create_task(InProcessRunner(engine, store).run(job, analysis=analysis))
    await asyncio.wait_for(started.wait(), 10)
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (await store.get_job("job-2")).status == "queued"  # type: ignore[union-attr]  # resumable
    checkpointed = await store.load_checkpoints("job-2")
    assert checkpointed and all(k.split("/")[0] in ("metadata", "lessons") for k in checkpointed)

    # Resume with a well-behaved provider.
    resumed_models = scripted_models(settings)
    result = await InProcessRunner(make_engine(settings, resumed_models), store).run(job, analysis=analysis)
    assert result.course is not None
    replayed = {f"{c.phase}/{c.task}/{c.attempt}/{c.tier}" for c in result.report.calls if c.replayed}
    # A checkpoint write in flight at the cancel is shielded: it may land after the read above
    # (more often with the gates beside the loop). Every checkpoint is replayed, only the rest sent.
    assert set(checkpointed) <= replayed
    fresh_calls = sum(m.calls for m in resumed_models.values())
    assert fresh_calls == clean_calls - len(replayed)  # exactly the unfinished rest
    keys = [f"{c.phase}/{c.task}/{c.attempt}/{c.tier}" for c in result.report.calls]
    assert len(keys) == len(set(keys))  # one record per step: nothing ran twice
    assert result.course.model_dump() == clean.course.model_dump()  # type: ignore[union-attr]


async def test_changed_request_is_not_replayed(
    store: Store, settings: Settings, analysis: AnalysisResult
) -> None:
    models = scripted_models(settings)
    job, _ = await store.create_job(new_job("job-3", analysis))
    await InProcessRunner(make_engine(settings, models), store).run(job, analysis=analysis)

    # Judge requests (temperature 0, same lesson text) do not change with the routing temperature,
    # so they are rightly replayed: count the generation requests only.
    def generation_calls(ms: dict[str, Any]) -> int:
        return sum(1 for m in ms.values() for r in m.requests if r.schema_name != "judge")

    before = generation_calls(models)
    routing = settings.routing.model_copy(update={"temperature": 0.1})
    other = settings.model_copy(update={"routing": routing})
    models2 = scripted_models(other)
    result = await InProcessRunner(make_engine(other, models2), store).run(job, analysis=analysis)
    assert generation_calls(models2) == before
    assert not any(c.replayed for c in result.report.calls if not c.task.startswith("judge"))


async def test_resolve_job_names_and_resumes(store: Store, analysis: AnalysisResult) -> None:
    job, msg = await resolve_job(store, analysis, None)
    assert job.id == analysis.course_id or (job.id.startswith("python") and "new" in msg)
    again, msg = await resolve_job(store, analysis, None)
    assert again.id == job.id and "resuming" in msg
    await store.update_job(job.id, status="completed")
    third, msg = await resolve_job(store, analysis, None)
    assert third.id == f"{job.id}-2" and "new" in msg
    named, msg = await resolve_job(store, analysis, job.id)
    assert named.id == job.id and "already completed" in msg
    other = analysis.model_copy(update={"topic": "Something else"})
    with pytest.raises(UserError, match="--job"):
        await resolve_job(store, other, job.id)


async def test_generate_durably_reuses_a_completed_job(
    store: Store, settings: Settings, analysis: AnalysisResult
) -> None:
    models = scripted_models(settings)
    engine = make_engine(settings, models)
    said: list[str] = []
    course, report = await generate_durably(
        settings, analysis, job_id="cli-job", engine=engine, store=store, say=said.append
    )
    calls = sum(m.calls for m in models.values())
    course2, report2 = await generate_durably(
        settings, analysis, job_id="cli-job", engine=engine, store=store, say=said.append
    )
    assert sum(m.calls for m in models.values()) == calls
    assert course2 is not None and course is not None and course2.model_dump() == course.model_dump()
    assert report2.total_cost_usd == report.total_cost_usd
    assert any("already completed" in s for s in said)


def _drifts(brief: dict[str, Any]) -> bool:
    return str(brief.get("lesson_title", "")).endswith("part 1)")


async def test_interrupted_regeneration_resumes_without_paying_twice(
    store: Store, settings: Settings, analysis: AnalysisResult
) -> None:
    """A reviewer's regeneration killed after its first (rejected, paid) call: run again, that
    call is replayed from its checkpoint and only the rest is sent."""
    drifting = CourseAuthor(off_topic=_drifts)
    engine = make_engine(settings, scripted_models(settings, lambda _m: drifting))
    job, _ = await store.create_job(new_job("job-r", analysis))
    first = await InProcessRunner(engine, store).run(job, analysis=analysis)
    assert first.course is not None and first.course.status == "needs_review"
    item = next(r for r in await store.list_reviews(status="open") if r.target.startswith("S"))
    await store.update_review(
        item.id, status="regenerating", resolution={"action": "regenerate", "note": "Stay on topic."}
    )

    # First try: the regeneration's first call answers off-topic again (rejected, checkpointed),
    # the second hangs until the process "dies".
    hanging = asyncio.Event()
    sent: list[str] = []

    async def dying(request: ChatRequest) -> str:
        sent.append(str(request.tags.get("task")))
        if len(sent) >= 2:
            hanging.set()
            await asyncio.sleep(3600)
        return drifting(request)

    dying_models = {m: ScriptedModel(dying, model_id=m) for m in settings.models}
    task = asyncio.create_task(revise_review(make_engine(settings, dying_models), store, item.id))
    await asyncio.wait_for(hanging.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    still = await store.get_review(item.id)
    assert still is not None and still.status == "regenerating"
    tagged = {k: cp for k, cp in (await store.load_checkpoints("job-r")).items() if "/review-" in k}
    assert len(tagged) == 1  # the finished, paid call

    # Run again with a provider that now writes on-topic lessons.
    careful = scripted_models(settings)
    done = await revise_review(make_engine(settings, careful), store, item.id)
    assert done.status == "regenerated"
    [entry] = done.resolution["history"]
    assert entry["replayed_calls"] == 1 and entry["calls"] >= 2
    resent = [str(r.tags.get("task")) for m in careful.values() for r in m.requests]
    report = await store.get_report("job-r")
    assert report is not None
    review_calls = [c for c in report["calls"] if c["phase"] == "review"]
    replayed = [c for c in review_calls if c["replayed"]]
    assert [f"review/{c['task']}/{c['attempt']}/{c['tier']}" for c in replayed] == list(tagged)
    assert len(resent) == len(review_calls) - 1  # everything but the replayed call was sent
    keys = [f"{c['task']}/{c['attempt']}/{c['tier']}" for c in review_calls]
    assert len(keys) == len(set(keys))
    course = await store.get_course("job-r")
    assert course is not None
    lesson = next(x for s in course["sections"] for x in s["lessons"] if x["id"] == item.target)
    assert lesson["content"] != next(x.content for x in first.course.lessons() if x.id == item.target)
