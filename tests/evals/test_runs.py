"""An eval on the simulator, end to end: every (input, config, repeat) a durable job, the
reference judge on every config's lessons, and an interrupted eval that resumes without paying
for any finished call twice."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from pathlib import Path

import pytest

from courseforge.errors import UserError
from courseforge.evals import EvalInput, ReferenceJudge, load_eval_config
from courseforge.evals.session import EvalPlan, SimOptions, run_eval, write_outputs
from courseforge.pipeline import parse_analysis
from courseforge.storage import open_store

REPO = Path(__file__).resolve().parents[2]
SET = REPO / "evals" / "set"
CONFIGS = REPO / "evals" / "configs"


def inputs(*names: str) -> list[EvalInput]:
    return [
        EvalInput(n, parse_analysis((SET / f"{n}.json").read_bytes(), max_bytes=2_000_000)) for n in names
    ]


def configs(*names: str) -> list:  # type: ignore[type-arg]
    return [load_eval_config(str(CONFIGS / f"{n}.yaml"), env={}) for n in names]


def eval_plan(out: Path, **kw: object) -> EvalPlan:
    base: dict[str, object] = dict(
        inputs=inputs("python-basics", "one-section-budgeting"),
        configs=configs("hosted", "always-premium"),
        out_dir=out,
        sim=SimOptions("ideal", seed=1, time_scale=0.0),
        concurrency=2,
    )
    return EvalPlan(**{**base, **kw})  # type: ignore[arg-type]


async def test_eval_of_two_configs_on_the_simulator(tmp_path: Path) -> None:
    doc, runs = await run_eval(eval_plan(tmp_path / "out"), say=lambda _: None)
    assert len(runs) == 4 and {r.status for r in runs} <= {"approved", "needs_review"}
    by = {(r.input, r.config): r for r in runs}
    # The 1-section course still reaches min_lessons (10).
    assert by["one-section-budgeting", "hosted"].lessons >= 10
    # Premium for everything costs more, on every input; the calls say which models ran.
    for name in ("python-basics", "one-section-budgeting"):
        assert by[name, "always-premium"].cost_per_course > by[name, "hosted"].cost_per_course
    premium = by["python-basics", "always-premium"]
    assert set(premium.lessons_by_tier) and "gpt-oss-20b" not in premium.calls_by_model
    assert "gpt-oss-20b" in by["python-basics", "hosted"].calls_by_model
    # One reference judge scored every config's lessons.
    for r in runs:
        assert r.judge_model == "qwen3-max" and r.judge_composite is not None
        assert all(s.composite is not None for s in r.lesson_scores) and len(r.lesson_scores) == r.lessons
        assert r.critical_path_s > 0 and r.wall_over_critical == pytest.approx(
            r.wall_s / r.critical_path_s, rel=1e-3
        )
    cost = next(d for d in doc["differences"] if d["figure"] == "cost_per_course")
    assert cost["config"] == "always-premium" and cost["ratio"]["value"] > 1 and cost["ratio"]["n"] == 2
    assert (
        doc["configs"]["hosted"]["figures"]["cost_per_course"]["p95"]
        >= doc["configs"]["hosted"]["figures"]["cost_per_course"]["p50"]
    )
    assert set(doc["inputs"]["python-basics"]) == {"hosted", "always-premium"}
    summary = doc["summary"]  # flat, for the dashboard's table of evals
    assert (
        summary["hosted.runs"] == 2 and summary["always-premium/hosted.cost_ratio"] == cost["ratio"]["value"]
    )
    assert summary["hosted.cost_per_course"] == doc["configs"]["hosted"]["figures"]["cost_per_course"]["mean"]
    assert all(v is None or isinstance(v, int | float) for v in summary.values())
    data, page = write_outputs(tmp_path / "out", doc)
    assert json.loads(data.read_text())["schema"] == "courseforge.eval/1"
    assert "<svg" in page.read_text()


async def test_an_interrupted_eval_resumes_and_pays_no_finished_call_twice(tmp_path: Path) -> None:
    out = tmp_path / "out"
    plan = eval_plan(out, configs=configs("hosted"), repeat=2, concurrency=1)
    store_url = f"sqlite:///{out / 'store.db'}"
    task = asyncio.create_task(run_eval(plan, say=lambda _: None))
    # Let the first job finish and the second pay for a call, then interrupt (as Ctrl-C would).
    store = open_store(store_url)
    await store.init()
    try:
        deadline = time.monotonic() + 300  # a deadline, not a count of turns: CI's machine is loaded
        while time.monotonic() < deadline and not task.done():
            await asyncio.sleep(0.05)
            jobs = await store.list_jobs(limit=100) if (out / "store.db").exists() else []
            running = [j for j in jobs if j.status == "running"]
            # ... and the running one has paid for something.
            if (
                any(j.status == "completed" for j in jobs)
                and running
                and await store.load_checkpoints(running[0].id)
            ):
                break
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        before = {j.id: j.status for j in await store.list_jobs(limit=100)}
        assert "completed" in before.values() and len(before) < 4  # cut short
        _, runs = await run_eval(plan, say=lambda _: None)
        assert len(runs) == 4 and all(r.status != "failed" for r in runs)
        jobs = {j.id: j for j in await store.list_jobs(limit=100)}
        assert all(j.status == "completed" for j in jobs.values())
        for job_id, status in before.items():
            if status == "completed":
                assert jobs[job_id].runs == 1  # reused, not run again
        assert any(j.runs == 2 for j in jobs.values())  # the interrupted job was resumed
        # Across every run of every job, each answered step was paid (not replayed) once.
        paid: Counter[tuple[str, str]] = Counter()
        for job_id in jobs:
            for call in await store.list_calls(job_id):
                if not call.replayed and call.record["outcome"] in ("ok", "rejected"):
                    paid[job_id, call.step_key] += 1
        assert paid and max(paid.values()) == 1
        replayed = [c for j in jobs for c in await store.list_calls(j) if c.replayed]
        assert replayed  # what the interrupted job had paid for came back from the store
    finally:
        await store.close()


def test_reference_judge_must_be_a_model_of_some_config() -> None:
    cfgs = configs("hosted", "always-premium")
    assert ReferenceJudge.pick(None, cfgs)[0] == "qwen3-max"
    assert ReferenceJudge.pick("gpt-oss-120b", cfgs) == ("gpt-oss-120b", cfgs[0])
    with pytest.raises(UserError) as info:
        ReferenceJudge.pick("no-such-model", cfgs)
    assert info.value.problems[0][0] == "--reference-judge"


async def test_no_more_than_concurrency_courses_run_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from decimal import Decimal

    from courseforge.domain import Report
    from courseforge.evals import plan, run_matrix
    from courseforge.evals import runs as runs_module

    running, peak = 0, 0

    async def fake(settings: object, analysis: object, *, job_id: str, **_: object) -> tuple[None, Report]:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1
        return None, Report(course_id=job_id, status="failed", budget_usd=Decimal("1"), failure_reason="fake")

    monkeypatch.setattr(runs_module, "generate_durably", fake)
    specs = plan(
        inputs("python-basics", "spanish-a1", "intro-ethics"), configs("hosted", "always-premium"), 2
    )
    engines = {"hosted": None, "always-premium": None}  # never reached: the fake runs nothing
    results = await run_matrix(
        specs, store=None, engines=engines, judge=None, concurrency=3, say=lambda _: None
    )  # type: ignore[arg-type]
    assert peak == 3 and len(results) == 12
    assert [r.job_id for r in results] == [s.job_id for s in specs]  # in plan order
    assert all(r.failure_rate == 1.0 for r in results)
    assert len({s.job_id for s in specs}) == 12  # every (input, config, repeat) its own job


def test_job_ids_name_the_input_its_content_the_config_and_the_repeat() -> None:
    from courseforge.evals import job_id_for

    (item,) = inputs("python-basics")
    hosted, premium = configs("hosted", "always-premium")
    ids = {job_id_for(item, c, r) for c in (hosted, premium) for r in (1, 2)}
    assert len(ids) == 4 and all(i.startswith("eval-python-basics-") for i in ids)
    edited = EvalInput(item.name, item.analysis.model_copy(update={"topic": "Python, revised"}))
    assert job_id_for(edited, hosted, 1) != job_id_for(item, hosted, 1)
