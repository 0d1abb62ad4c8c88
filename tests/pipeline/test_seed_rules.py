"""Seed rules applied in phase 3 (docs/seed-rules.md): the budget step-down, the borderline
similarity -> judge -> flag path and the judge's concerns escalating, per-tier bars, the
judge's per-dimension floors, and a reviewer's "needs the best quality"."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from courseforge.config import Settings
from courseforge.errors import ProviderHTTPError
from courseforge.pipeline import PipelineContext
from courseforge.pipeline.lesson_checks import borderline_accepted, tier_bar
from courseforge.pipeline.prompts import parse_brief
from courseforge.providers import ChatRequest
from courseforge.quality.base import GateContext, GateResult
from courseforge.quality.judge import JudgeDraft, JudgeGate
from courseforge.testing import CourseAuthor
from engine_helpers import example_analysis, hosted_settings, make_engine, scripted_models


class _Spent:
    """Effects' budget slice: a fixed share of the cap already committed."""

    def __init__(self, fraction: float) -> None:
        self.fraction = fraction

    def budget_fraction(self) -> float:
        return self.fraction


def _with(settings: Settings, **sections: dict[str, Any]) -> Settings:
    """`settings` with keys of its sections replaced: `_with(s, budget={"step_down_at": 0.5})`."""
    updates = {name: getattr(settings, name).model_copy(update=values) for name, values in sections.items()}
    return settings.model_copy(update=updates)


# -- 11. the budget step-down ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fraction", "step_down_at", "tier", "ceiling"),
    [
        pytest.param(0.0, 0.8, "mid", None, id="nothing spent: no ceiling"),
        pytest.param(0.79, 0.8, "mid", None, id="just below the point"),
        pytest.param(0.8, 0.8, "mid", "mid", id="at the point: capped at the step-down tier"),
        pytest.param(0.95, 0.8, "mid", "mid", id="past it"),
        pytest.param(0.95, 0.8, None, None, id="no step-down tier configured"),
        pytest.param(0.5, 0.5, "cheap", "cheap", id="another point and tier"),
    ],
)
def test_policy_ceiling_follows_the_budget(
    fraction: float, step_down_at: float, tier: str | None, ceiling: str | None
) -> None:
    settings = _with(hosted_settings(), budget={"step_down_at": step_down_at, "step_down_tier": tier})
    ctx = PipelineContext(settings, _Spent(fraction), Decimal(1))  # type: ignore[arg-type]
    _, priority = ctx.priority_for("concept", False)
    assert ctx.policy(priority)().ceiling == ceiling


async def test_near_the_cap_a_premium_routed_lesson_steps_down() -> None:
    # Step down from the first lesson on (the metadata's spend is past 1e-6 of the cap): the
    # critical section (seed 000: premium) starts on mid, and no lesson call reaches premium.
    settings = _with(hosted_settings(), budget={"step_down_at": 1e-6, "step_down_tier": "mid"})
    engine = make_engine(settings, scripted_models(settings))
    try:
        result = await engine.generate(example_analysis())
    finally:
        await engine.aclose()
    assert result.course is not None
    steps = [d for d in result.report.decisions if d.action == "step_down"]
    assert steps and all(d.tier == "mid" and "capped at mid" in d.reason for d in steps)
    assert not [c for c in result.report.calls if c.task.startswith("lesson:") and c.tier == "premium"]
    # Without the step-down the same course starts its critical lessons on premium.
    plain = hosted_settings()
    engine = make_engine(plain, scripted_models(plain))
    try:
        again = await engine.generate(example_analysis())
    finally:
        await engine.aclose()
    assert [c for c in again.report.calls if c.task.startswith("lesson:") and c.tier == "premium"]
    assert not [d for d in again.report.decisions if d.action == "step_down"]


# -- 4. borderline similarity -> judge -> flag; the judge's concerns escalate ------------------
def _borderline_settings(**judge: Any) -> Settings:
    """Every lesson's similarity fails the pass mark but sits in the judge's band."""
    settings = hosted_settings()
    similarity = dict(settings.gates.similarity)
    similarity["hashing"] = similarity["hashing"].model_copy(update={"pass_at": 0.99, "severe_below": -1.0})
    js = settings.gates.judge.model_copy(update={"borderline": {"hashing": (-1.0, 0.99)}, **judge})
    return _with(settings, gates={"similarity": similarity, "judge": js})


async def _run(settings: Settings, harsh: bool = False):  # type: ignore[no-untyped-def]
    author = CourseAuthor()

    def script_for(model_id: str):  # type: ignore[no-untyped-def]
        def script(request: ChatRequest) -> str:
            if harsh and parse_brief(request.messages).get("task") == "judge":
                fair = json.loads(author(request))
                return json.dumps({**fair, "correctness": 2, "comprehensiveness": 3, "readability": 3})
            return author(request)

        return script

    engine = make_engine(settings, scripted_models(settings, script_for))
    try:
        return await engine.generate(example_analysis())
    finally:
        await engine.aclose()


async def test_a_borderline_lesson_the_judge_accepts_proceeds_with_a_flag() -> None:
    result = await _run(_borderline_settings())
    assert result.course is not None
    slots = list(result.state.slots.values())
    assert slots and all(s.status == "flagged" for s in slots), [s.status for s in slots]
    assert all("borderline similarity accepted by the judge" in s.reason for s in slots)
    assert all(borderline_accepted(s.gates) for s in slots)
    assert result.course.status == "needs_review"
    flagged = {f.target for f in result.course.review}
    assert {f"lesson:{s.id}" for s in slots} <= flagged
    judged = [d for d in result.report.decisions if d.action == "judge"]
    assert judged and all("borderline similarity" in d.reason for d in judged)
    # The flag is the seed's rule, configurable: off, the same lessons are simply accepted.
    quiet = await _run(_borderline_settings(flag_borderline=False))
    assert all(s.status == "accepted" for s in quiet.state.slots.values())


async def test_the_judges_concerns_on_a_borderline_lesson_escalate_at_once_to_the_top() -> None:
    result = await _run(_borderline_settings(), harsh=True)
    escalations = [d for d in result.report.decisions if d.action == "escalate"]
    assert escalations
    # Seed 001: "escalate to qwen3-max when the judge has concerns": from the first attempt's
    # tier straight to premium, no retry on the same tier first.
    first = [d for d in escalations if d.inputs.get("attempt") == 1]
    assert first and all(d.tier == "premium" and d.inputs["severe"] for d in first)
    off = await _run(
        _with(_borderline_settings(escalate_on_concerns=False), routing={"severe_to_top": False}), harsh=True
    )
    first_off = [d for d in off.report.decisions if d.inputs.get("attempt") == 1 and d.action != "judge"]
    assert any(d.action == "retry" for d in first_off)


# -- 2. per-tier bars and per-dimension floors ---------------------------------------------------
@pytest.mark.parametrize(
    ("scores", "tier", "passed"),
    [
        pytest.param((4, 4, 4), "mid", True, id="4/4/4 passes tier 1"),
        pytest.param((4, 4, 4), "premium", True, id="4/4/4 = 4.0 meets tier 2's 4.0"),
        pytest.param((5, 3, 4), "mid", False, id="comprehensiveness 3/5 < 0.70"),
        pytest.param((5, 4, 3), "mid", False, id="readability 3/5 < 0.70"),
        pytest.param((3, 5, 5), "mid", False, id="correctness 3/5 < 0.80 (composite 3.8 passes)"),
        pytest.param((4, 5, 4), "premium", True, id="composite 4.2 on premium"),
    ],
)
def test_judge_floors_and_tier_bars_from_settings(
    scores: tuple[int, int, int], tier: str, passed: bool
) -> None:
    js = hosted_settings().gates.judge
    c, k, r = scores
    gate = JudgeGate(js.pass_composite_by_tier.get(tier, js.pass_composite), js.min_correctness, js.floors)
    draft = JudgeDraft(correctness=c, comprehensiveness=k, readability=r)
    assert gate.check(None, GateContext(values={"judge": draft})).passed is passed


def test_premium_composite_bar_is_four() -> None:
    js = hosted_settings().gates.judge
    # 0.6*4 + 0.2*4 + 0.2*3 = 3.8 passes tier 1 (3.5) but not tier 2 (4.0); no floor is at 4
    # for readability... 3/5 = 0.6 < 0.7: use floors off to see the composite bar alone.
    draft = JudgeDraft(correctness=4, comprehensiveness=4, readability=3)
    assert js.pass_composite_by_tier == {"premium": 4.0}
    tier1 = JudgeGate(js.pass_composite, js.min_correctness)
    tier2 = JudgeGate(js.pass_composite_by_tier["premium"], js.min_correctness)
    assert tier1.check(None, GateContext(values={"judge": draft})).passed
    assert not tier2.check(None, GateContext(values={"judge": draft})).passed


@pytest.mark.parametrize(
    ("tier", "score", "passed"),
    [("premium", 0.50, False), ("premium", 0.57, True), ("mid", 0.49, True), ("cheap", 0.50, True)],
)
def test_premium_similarity_bar(tier: str, score: float, passed: bool) -> None:
    settings = hosted_settings()
    gates = settings.gates.model_copy(update={"embedding_model": "all-MiniLM-L6-v2"})
    ctx = PipelineContext(settings.model_copy(update={"gates": gates}), _Spent(0.0), Decimal(1))  # type: ignore[arg-type]
    sim = GateResult("similarity", True, score, [], "pass", threshold=0.48)
    (out,) = tier_bar([sim], ctx, tier)
    assert out.passed is passed
    if not passed:
        # Calibrated on the outside set at 10 % false alarms (issue 26; on titled scores since
        # issue 24's round 3), not the tier step carried over.
        assert out.threshold == 0.56 and "premium tier's bar" in out.reasons[-1]


# -- 8. never escalate down; a weaker fallback only for availability, flagged -------------------
async def test_an_answer_from_a_weaker_fallback_is_kept_but_flagged() -> None:
    settings = hosted_settings()
    premium = settings.routing.tiers["premium"]
    author = CourseAuthor()

    def script_for(model_id: str):  # type: ignore[no-untyped-def]
        def script(request: ChatRequest) -> str:
            if model_id == premium:
                raise ProviderHTTPError(503, "unavailable")
            return author(request)

        return script

    engine = make_engine(settings, scripted_models(settings, script_for))
    try:
        result = await engine.generate(example_analysis())
    finally:
        await engine.aclose()
    assert result.course is not None and result.course.status == "needs_review"
    weaker = [c for c in result.report.calls if c.reason.startswith("weaker fallback for qwen3-max")]
    assert weaker and all(c.model != premium for c in weaker)
    # The critical metadata (premium) and the critical section's lessons (premium, rule 1) were
    # answered by a weaker model: each is flagged, none silently accepted.
    targets = {f.target for f in result.course.review}
    assert "metadata" in targets
    premium_lessons = [s for s in result.state.slots.values() if s.start_tier == "premium"]
    assert premium_lessons and all(
        s.status == "flagged" and "weaker fallback" in s.reason for s in premium_lessons
    )


# -- 12. a reviewer's "needs the best quality" ---------------------------------------------------
async def test_a_reviewer_asking_for_the_best_quality_sends_the_lesson_straight_to_premium() -> None:
    settings = hosted_settings()
    engine = make_engine(settings, scripted_models(settings))
    try:
        analysis = example_analysis()
        result = await engine.generate(analysis)
        assert result.course is not None
        lesson = next(s for s in result.state.slots.values() if s.start_tier == "cheap")
        spent = result.report.total_cost_usd
        plain = await engine.revise(
            analysis, result.course, lesson.id, note="More examples.", tag="plain", spent_usd=spent
        )
        best = await engine.revise(
            analysis,
            result.course,
            lesson.id,
            note="More examples.",
            tag="best",
            spent_usd=spent,
            best_quality=True,
        )
    finally:
        await engine.aclose()
    assert {c.tier for c in plain.calls if c.task.startswith("lesson:")} == {"cheap"}
    lesson_calls = [c for c in best.calls if c.task.startswith("lesson:")]
    assert lesson_calls and {c.tier for c in lesson_calls} == {"premium"}
    assert any("best quality" in d.reason and d.tier == "premium" for d in best.decisions)
    assert best.revision.status == "accepted"


# -- related but wrong: another section's outcome fits better -> the judge (issue 24) -------------
async def test_a_lesson_fitting_another_sections_outcome_better_goes_to_the_judge() -> None:
    from courseforge.pipeline.lesson_checks import rival_outcomes

    settings = hosted_settings()
    similarity = dict(settings.gates.similarity)
    # Every lesson passes the absolute mark: only the rival margin can make one borderline.
    similarity["hashing"] = similarity["hashing"].model_copy(
        update={"pass_at": -1.0, "severe_below": -1.0, "rival_margin": 0.1}
    )
    author, last_outcome = CourseAuthor(), [""]

    def script_for(model_id: str):  # type: ignore[no-untyped-def]
        def script(request: ChatRequest) -> str:
            brief, answer = parse_brief(request.messages), author(request)
            if brief.get("task") == "metadata_core":
                last_outcome[0] = json.loads(answer)["learning_outcomes"][-1]["text"]
            if brief.get("task") == "lesson" and brief["lesson_title"].endswith("part 1)"):
                # The first lesson of every section teaches the course's last outcome instead.
                return json.dumps({**json.loads(answer), "content": (last_outcome[0] + ". ") * 30})
            return answer

        return script

    engine = make_engine(
        _with(settings, gates={"similarity": similarity}), scripted_models(settings, script_for)
    )
    try:
        result = await engine.generate(example_analysis())
    finally:
        await engine.aclose()
    state = result.state
    own = {n for s in state.slots_in(0) for n in s.outcome_numbers}
    assert rival_outcomes(state, 0) == {
        o.id: o.text for n, o in enumerate(state.outcomes, start=1) if n not in own
    }
    judged = [d for d in result.report.decisions if d.action == "judge" and "borderline" in d.reason]
    assert judged, "a lesson fitting another section's outcome was not sent to the judge"
    # Settled by the judge (the scripted one accepts): a borderline lesson it accepts proceeds with a flag.
    settled = [s for s in state.slots.values() if borderline_accepted(s.gates)]
    assert settled and all(s.id.endswith("-L1") and s.status == "flagged" for s in settled)
