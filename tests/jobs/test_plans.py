"""The plan checkpoint: a job stops after phase 2, its plan is edited (gated first) and
approved, and the same job finishes from the approved plan without paying phase 2 again."""

from __future__ import annotations

from pathlib import Path

import pytest

from courseforge.config import Settings
from courseforge.domain import AnalysisResult, PlanLesson
from courseforge.errors import UserError
from courseforge.jobs import InProcessRunner, PlanRefused, approve_plan, edit_plan, job_plan, new_job
from courseforge.providers.embeddings import HashingEmbedder
from courseforge.storage import Store, open_store
from engine_helpers import make_engine, scripted_models


@pytest.fixture
async def store(tmp_path: Path) -> Store:
    s = open_store(f"sqlite:///{tmp_path}/jobs.db")
    await s.init()
    return s


def _tasks(models: dict) -> list[str]:  # type: ignore[type-arg]
    return [r.tags.get("task", "") for m in models.values() for r in m.requests]


async def test_a_reviewed_job_stops_after_phase_2_then_finishes_from_the_edited_plan(
    store: Store, settings: Settings, analysis: AnalysisResult
) -> None:
    models = scripted_models(settings)
    engine = make_engine(settings, models)
    job, _ = await store.create_job(new_job("job-p", analysis, review_plan=True))
    first = await InProcessRunner(engine, store).run(job, analysis=analysis)
    assert first.course is None and first.report.status == "plan_review"
    assert {c.phase for c in first.report.calls} == {"metadata"}  # no lesson paid
    paid_before = _tasks(models)
    stored, plan, state = await job_plan(store, "job-p")
    assert stored.status == "plan_review" and state == "review"
    lessons = [lp for s in plan.sections for lp in s.lessons]
    assert len(lessons) == 10 and all(lp.start_tier and lp.estimated_cost_usd > 0 for lp in lessons)
    assert plan.projected_lessons_usd == pytest.approx(sum(lp.estimated_cost_usd for lp in lessons), abs=1e-5)
    assert plan.spent_usd > 0 and plan.budget_usd == float(settings.budget.per_course_usd)

    # An outcome about nothing the course teaches: refused with the gates' reasons, not kept.
    bad = plan.model_copy(deep=True)
    bad.outcomes[0].text = "Eat a sandwich while watching television at home"
    with pytest.raises(PlanRefused) as refused:
        await edit_plan(store, settings, "job-p", bad, HashingEmbedder().embed)
    assert "no measurable verb" in refused.value.problems[0][1]
    assert (await job_plan(store, "job-p"))[1] == plan
    # Fewer lessons than the input's min_lessons: refused (phase 5 would pay to refill them).
    short = plan.model_copy(deep=True)
    short.sections[0].lessons.pop()
    with pytest.raises(PlanRefused, match="metadata gates"):
        await edit_plan(store, settings, "job-p", short, HashingEmbedder().embed)

    # An outcome reworded, a lesson retitled, two lessons swapped, one moved out and one added.
    good = plan.model_copy(deep=True)
    good.outcomes[0].text += " in small programs"
    good.sections[0].lessons[0].title = "Your very first Python program"
    good.sections[1].lessons.reverse()
    good.sections[2].lessons.append(PlanLesson(title="Loops in practice: a tally", outcomes=["LO3"]))
    good.sections[3].lessons.pop()
    edited = await edit_plan(store, settings, "job-p", good, HashingEmbedder().embed)
    assert [lp.id for lp in edited.sections[2].lessons] == ["S3-L1", "S3-L2", "S3-L3"]
    with pytest.raises(UserError, match="not found"):
        await approve_plan(store, "job-nope")
    await approve_plan(store, "job-p")

    resumed = await store.get_job("job-p")
    assert resumed is not None
    second = await InProcessRunner(engine, store).run(resumed, analysis=analysis)
    assert second.course is not None
    after = await store.get_job("job-p")
    assert after is not None and after.status == "completed" and after.runs == 2

    # Phase 2 was replayed from the checkpoints: not one metadata request more to any model.
    def metadata_requests() -> int:
        return sum(t.startswith("metadata") for t in _tasks(models))

    assert metadata_requests() == sum(t.startswith("metadata") for t in paid_before) == 2
    meta = [c for c in second.report.calls if c.phase == "metadata"]
    assert meta and all(c.replayed for c in meta)
    titles = [lesson.title for lesson in second.course.lessons()]
    assert titles[0] == "Your very first Python program" and "Loops in practice: a tally" in titles
    s2 = [lesson.title for lesson in second.course.sections[1].lessons]
    assert s2 == [lp.title for lp in good.sections[1].lessons]
    assert second.course.metadata.learning_outcomes[0].text.endswith("in small programs")
