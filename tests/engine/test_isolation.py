"""Courses sharing an engine share only what is meant to be shared (stacks, breakers, the
embedder): two courses run at once keep their own samples, decisions and money apart."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from decimal import Decimal

from courseforge.domain import Report
from courseforge.domain.tasks import TaskId
from courseforge.pipeline.prompts import parse_brief
from courseforge.providers import ChatRequest
from courseforge.testing import CourseAuthor
from engine_helpers import example_analysis, hosted_settings, make_engine, scripted_models

DRIFT = "Gardening in spring: soil, seeds, watering cans and the weather for planting tomatoes. " * 12


def sampled_settings():  # type: ignore[no-untyped-def]
    settings = hosted_settings()
    consistency = settings.gates.consistency.model_copy(
        update={"all_sections": True, "tiers": ["cheap", "mid"]}
    )
    gates = settings.gates.model_copy(update={"consistency": consistency})
    return settings.model_copy(update={"gates": gates})


def consistency_scores(report: Report) -> list[float]:
    return [
        g.score for lg in report.lessons for g in lg.gates if g.gate == "consistency" and g.score is not None
    ]


async def test_two_courses_at_once_never_mix_samples_decisions_or_costs() -> None:
    settings = sampled_settings()
    author = CourseAuthor()
    seen: Counter[str] = Counter()

    def script(request: ChatRequest) -> str:
        answer = author(request)
        key = request.messages[0].content + request.messages[-1].content
        seen[key] += 1
        # The two courses differ only in their audience (in the system prompt), so their lessons
        # are word for word the same. Course B's second samples (the same request again) drift:
        # its samples disagree, while course A's are identical and agree completely — the same
        # chosen text carries a different agreement in each course.
        is_b = "(B)" in request.messages[0].content
        if is_b and parse_brief(request.messages).get("task") == "lesson" and seen[key] % 2 == 0:
            data = json.loads(answer)
            data["content"] = DRIFT
            return json.dumps(data)
        return answer

    models = scripted_models(settings, lambda _m: script)
    engine = make_engine(settings, models)
    a = example_analysis(course_id="a")
    b = example_analysis(course_id="b", target_audience=a.target_audience + " (B)")
    try:
        ra, rb = await asyncio.gather(engine.generate(a), engine.generate(b))
    finally:
        await engine.aclose()

    # Samples: each lesson's consistency verdict comes from its own course's samples.
    a_scores, b_scores = consistency_scores(ra.report), consistency_scores(rb.report)
    assert a_scores and all(s == 1.0 for s in a_scores)
    assert b_scores and max(b_scores) < 1.0
    for report in (ra.report, rb.report):
        assert any(TaskId.parse(c.task).sample == 2 for c in report.calls)

    # Decisions: each course routed exactly its own lesson generations.
    for result in (ra, rb):
        routed = sorted(d.task for d in result.report.decisions if d.action == "route")
        lesson_calls = {
            TaskId.parse(c.task).base.key()
            for c in result.report.calls
            if c.task.startswith("lesson:") and c.phase in ("lessons", "quality", "completeness")
        }
        assert sorted(set(routed)) == routed == sorted(lesson_calls)
        assert result.state is not None and result.report.decisions == result.state.decisions

    # Money: each report is its own calls' sum, and together they are every call that was sent.
    sent = sum(m.calls for m in models.values())
    billed = [c for r in (ra.report, rb.report) for c in r.calls if c.outcome in ("ok", "rejected", "error")]
    assert sent == len(billed)
    for report in (ra.report, rb.report):
        assert report.total_cost_usd == sum((c.cost_usd for c in report.calls), Decimal(0))
        assert report.total_cost_usd <= report.budget_usd
    # The lesson texts really are the same in both courses (what a shared table would confuse).
    assert ra.course is not None and rb.course is not None
    assert {x.content for x in ra.course.lessons()} & {x.content for x in rb.course.lessons()}
