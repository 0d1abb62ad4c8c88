"""Runs the five phases in order over one course state."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from ..domain import AnalysisResult, Course
from ..errors import GenerationFailed
from ..telemetry import span
from .assemble import assemble_course
from .completeness import run_completeness
from .course_checks import cross_artifact_flags, run_quality
from .lessons import create_slots, generate_lessons
from .metadata import run_metadata
from .plan import PlanReview, plan_checkpoint
from .state import CourseState, PipelineContext, ProgressEvent
from .validate import plan_lesson_counts

__all__ = ["PHASES", "PipelineResult", "run_pipeline"]

PHASES = ("validate", "metadata", "lessons", "quality", "completeness")


@dataclass(slots=True)
class PipelineResult:
    state: CourseState
    course: Course | None


async def run_pipeline(analysis: AnalysisResult, course_id: str, ctx: PipelineContext) -> PipelineResult:
    """Phase 1 (validation) happened when `analysis` was built; phases 2-5 run here."""
    state = CourseState(analysis=analysis, course_id=course_id, lesson_counts=plan_lesson_counts(analysis))
    ctx.progress(
        ProgressEvent(
            "validate",
            "done",
            f"{len(analysis.sections)} sections, {sum(state.lesson_counts)} lessons planned",
        )
    )
    try:
        with span("phase metadata", {"courseforge.phase": "metadata"}):
            ctx.progress(ProgressEvent("metadata", "start"))
            await run_metadata(state, ctx)
            ctx.progress(ProgressEvent("metadata", "done", state.core.course_title if state.core else ""))
        if await plan_checkpoint(state, ctx):  # an author reviews the plan before lessons are paid
            raise PlanReview
        create_slots(state)
        with span("phase lessons", {"courseforge.phase": "lessons", "courseforge.lessons": len(state.slots)}):
            ctx.progress(ProgressEvent("lessons", "start", total=len(state.slots)))
            await generate_lessons(state, ctx, list(state.slots.values()), "lessons")
            ctx.progress(ProgressEvent("lessons", "done"))
        with span("phase quality", {"courseforge.phase": "quality"}):
            ctx.progress(ProgressEvent("quality", "start"))
            await run_quality(state, ctx)
            ctx.progress(ProgressEvent("quality", "done"))
        with span("phase completeness", {"courseforge.phase": "completeness"}):
            ctx.progress(ProgressEvent("completeness", "start"))
            await run_completeness(state, ctx)
            ctx.progress(ProgressEvent("completeness", "done", state.failure))
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
