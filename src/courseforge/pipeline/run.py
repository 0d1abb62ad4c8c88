"""Runs the five phases in order over one course state."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ..domain import AnalysisResult, Course
from ..errors import GenerationFailed
from ..telemetry import span
from .assemble import assemble_course
from .bank import assign_bank
from .completeness import run_completeness
from .course_checks import cross_artifact_flags, run_quality
from .lessons import create_slots, run_lessons
from .metadata import run_metadata
from .plan import PlanReview, plan_checkpoint
from .state import CourseState, PipelineContext, ProgressEvent
from .validate import plan_lesson_counts

__all__ = ["PHASES", "PIPELINE", "Phase", "PipelineResult", "run_pipeline"]


async def _plan_lessons(state: CourseState, ctx: PipelineContext) -> None:
    """Phase 3's slots from phase 2's plan, unless an author reviews the plan first
    (`PlanReview`: stopped before any lesson is paid), and the bank questions they reuse."""
    if await plan_checkpoint(state, ctx):
        raise PlanReview
    create_slots(state)
    await assign_bank(state, ctx)  # vetted questions the lessons reuse (--question-bank)


@dataclass(frozen=True, slots=True)
class Phase:
    """One phase of `run_pipeline`: its name (the progress key, the span `phase <name>`) and
    `run`. `prepare` runs before its span opens; `tasks` counts what its progress reports (and
    is the span's `courseforge.<name>` attribute); `summary` is its "done" event's message."""

    name: str
    run: Callable[[CourseState, PipelineContext], Awaitable[CourseState]]
    prepare: Callable[[CourseState, PipelineContext], Awaitable[None]] | None = None
    tasks: Callable[[CourseState], int] | None = None
    summary: Callable[[CourseState], str] | None = None


#: Phases 2-5, in order (phase 1, validation, happened when the input was parsed).
PIPELINE: tuple[Phase, ...] = (
    Phase("metadata", run_metadata, summary=lambda s: s.core.course_title if s.core else ""),
    Phase("lessons", run_lessons, prepare=_plan_lessons, tasks=lambda s: len(s.slots)),
    Phase("quality", run_quality),
    Phase("completeness", run_completeness, summary=lambda s: s.failure),
)
PHASES = ("validate", *(p.name for p in PIPELINE))


@dataclass(slots=True)
class PipelineResult:
    state: CourseState
    course: Course | None


async def run_pipeline(analysis: AnalysisResult, course_id: str, ctx: PipelineContext) -> PipelineResult:
    """Phase 1 (validation) happened when `analysis` was built; phases 2-5 (`PIPELINE`) run
    here, each in its span with its start and done progress events."""
    state = CourseState(analysis=analysis, course_id=course_id, lesson_counts=plan_lesson_counts(analysis))
    ctx.progress(
        ProgressEvent(
            "validate",
            "done",
            f"{len(analysis.sections)} sections, {sum(state.lesson_counts)} lessons planned",
        )
    )
    try:
        for phase in PIPELINE:
            await _run_phase(phase, state, ctx)
    except GenerationFailed as exc:
        state.failure = exc.reason
    except PlanReview:
        ctx.progress(ProgressEvent("metadata", "info", "stopped for plan review"))
    except BaseException:
        # Cancelled or crashed: background work dies with the run instead of outliving it.
        for task in state.background:
            task.cancel()
        await asyncio.gather(*state.background, return_exceptions=True)
        raise
    # Calibration judging ran beside the phases; its records belong to this course's report.
    await asyncio.gather(*state.background, return_exceptions=True)
    if state.failure or state.plan_stop is not None:
        return PipelineResult(state, None)
    course = assemble_course(state)
    # Cross-artifact consistency of the whole course (exercises answerable from their lesson,
    # outcomes taught and assessed, prerequisite order): flagged for a person, never regenerated.
    extra = await cross_artifact_flags(course, ctx.settings, ctx.embedder())
    if extra:
        state.flags += extra
        course.review += extra
        course.status = "needs_review"
    return PipelineResult(state, course)


async def _run_phase(phase: Phase, state: CourseState, ctx: PipelineContext) -> None:
    if phase.prepare is not None:
        await phase.prepare(state, ctx)
    attributes: dict[str, str | int] = {"courseforge.phase": phase.name}
    total = phase.tasks(state) if phase.tasks is not None else 0
    if phase.tasks is not None:
        attributes[f"courseforge.{phase.name}"] = total
    with span(f"phase {phase.name}", attributes):
        ctx.progress(ProgressEvent(phase.name, "start", total=total))
        await phase.run(state, ctx)
        ctx.progress(ProgressEvent(phase.name, "done", phase.summary(state) if phase.summary else ""))
