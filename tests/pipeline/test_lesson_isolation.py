"""Phase 3's isolation (seed 003, risk 3): any failure in one lesson stays in that lesson, and a
lesson whose parallel run failed is retried alone, with the longer timeout, before it is flagged."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from courseforge.errors import ProviderHTTPError, ProviderTimeout
from courseforge.ledger import Ledger
from courseforge.pipeline import CourseState, PipelineContext, plan_lesson_counts
from courseforge.pipeline.lessons import create_slots, generate_lessons
from courseforge.pipeline.metadata import run_metadata
from courseforge.pipeline.prompts import parse_brief
from courseforge.providers import ChatRequest
from courseforge.testing import CourseAuthor, ScriptedModel
from engine_helpers import course_calls, example_analysis, hosted_settings


async def _rig(script):  # type: ignore[no-untyped-def]
    settings = hosted_settings()
    analysis = example_analysis()
    models = {m: ScriptedModel(script, model_id=m) for m in settings.models}
    ledger = Ledger(Decimal("5"))
    ctx = PipelineContext(settings, course_calls(settings, models, ledger), Decimal("5"))
    state = CourseState(analysis=analysis, course_id="iso", lesson_counts=plan_lesson_counts(analysis))
    await run_metadata(state, ctx)
    create_slots(state)
    return state, ctx, models


def _title(request: ChatRequest) -> str:
    brief = parse_brief(request.messages)
    return str(brief.get("lesson_title", "")) if brief.get("task") == "lesson" else ""


async def test_a_bug_in_one_lesson_fails_that_lesson_only() -> None:
    author = CourseAuthor()
    doomed: dict[str, str] = {}

    def script(request: ChatRequest):  # type: ignore[no-untyped-def]
        title = _title(request)
        if title and title == doomed.get("title"):
            return ZeroDivisionError("a bug of ours, not a RunError")
        return author(request)

    state, ctx, _ = await _rig(script)
    victim = next(iter(state.slots.values()))
    doomed["title"] = victim.title
    await generate_lessons(state, ctx, list(state.slots.values()), "lessons")  # does not raise
    assert victim.status == "failed"
    assert "ZeroDivisionError" in victim.reason
    others = [s for s in state.slots.values() if s is not victim]
    assert others and all(s.status in ("accepted", "flagged") for s in others)
    fails = [d for d in state.decisions if d.action == "fail"]
    assert fails and all(d.task.startswith(f"lesson:{victim.id}") for d in fails)


async def test_parallel_failure_retried_alone_with_the_longer_timeout() -> None:
    author = CourseAuthor()
    target: dict[str, str] = {}
    seen_timeouts: list[float | None] = []

    async def script(request: ChatRequest):  # type: ignore[no-untyped-def]
        title = _title(request)
        await asyncio.sleep(0)
        if title and title == target.get("title"):
            seen_timeouts.append(request.timeout_s)
            standard = ctx.settings.routing.priorities["standard"].timeout_s
            if request.timeout_s is not None and standard and request.timeout_s <= standard:
                return ProviderTimeout("slow under parallel load")
        return author(request)

    state, ctx, _ = await _rig(script)
    # A standard-priority lesson (a concept section that is not critical).
    slot = next(
        s
        for s in state.slots.values()
        if not state.analysis.sections[s.section_index].critical
        and state.analysis.sections[s.section_index].section_type == "concept"
    )
    target["title"] = slot.title
    await generate_lessons(state, ctx, list(state.slots.values()), "lessons")
    standard = ctx.settings.routing.priorities["standard"].timeout_s
    factor = ctx.settings.routing.sequential_timeout_factor
    assert standard is not None and factor > 1
    assert slot.status in ("accepted", "flagged"), slot.reason
    assert standard in seen_timeouts and standard * factor in seen_timeouts
    fallback = [d for d in state.decisions if d.action == "sequential_fallback"]
    assert [d.task for d in fallback] == [f"lesson:{slot.id}"]
    assert all(s.status in ("accepted", "flagged") for s in state.slots.values())


async def test_a_lesson_failing_again_alone_stays_failed_for_phase_5() -> None:
    author = CourseAuthor()
    target: dict[str, str] = {}

    def script(request: ChatRequest):  # type: ignore[no-untyped-def]
        if _title(request) and _title(request) == target.get("title"):
            return ProviderTimeout("always slow")
        return author(request)

    state, ctx, _ = await _rig(script)
    slot = next(iter(state.slots.values()))
    target["title"] = slot.title
    await generate_lessons(state, ctx, list(state.slots.values()), "lessons")
    assert slot.status == "failed"
    # Retried once alone (a round of its own), still failing: phase 5 decides what follows.
    assert [
        d.action
        for d in state.decisions
        if d.task == f"lesson:{slot.id}" and d.action == "sequential_fallback"
    ]
    assert slot.rounds == 1


async def test_a_refusal_is_not_retried_alone() -> None:
    author = CourseAuthor()
    target: dict[str, str] = {}

    def script(request: ChatRequest):  # type: ignore[no-untyped-def]
        if _title(request) and _title(request) == target.get("title"):
            return ProviderHTTPError(400, "refused")  # not retryable: the same call fails again
        return author(request)

    state, ctx, _ = await _rig(script)
    slot = next(iter(state.slots.values()))
    target["title"] = slot.title
    await generate_lessons(state, ctx, list(state.slots.values()), "lessons")
    assert slot.status == "failed" and not slot.transient_failure and slot.rounds == 0
    assert not [d for d in state.decisions if d.action == "sequential_fallback"]
