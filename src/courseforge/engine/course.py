"""Running one course: the one function every runner calls.

`run_course` is the whole of it — the course's ledger and metered calls, the five phases, the
report — for the CLI's durable jobs, the service and the Temporal workflow alike; they differ
only in the `Runtime` they pass (in-process stacks, or activities) and in whether finished calls
are checkpointed (`Checkpoints`: in-process jobs; a workflow's history does that itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..cache import ResponseCache
from ..config import Settings
from ..domain import AnalysisResult, CallRecord, Course, Decision, Exercise, Report
from ..ledger import Ledger, course_cap, phase_caps
from ..pipeline import CourseState, PipelineContext, ProgressEvent, run_pipeline
from ..pipeline.report_builder import build_report
from ..pipeline.revise import Revision
from ..pipeline.state import PlanControl
from ..resilience import EventCounts
from ..telemetry import SpanHandle, span
from .batching import BatchRoute
from .calls import Checkpoints, CourseCalls, Runtime

__all__ = ["GenerationResult", "RevisionResult", "course_id_for", "run_course"]


@dataclass(slots=True)
class GenerationResult:
    course: Course | None
    report: Report
    state: CourseState | None = field(default=None, repr=False)
    #: The plan record of a course waiting for its author elsewhere (a Temporal workflow).
    waiting_plan: dict[str, Any] | None = None

    @property
    def plan(self) -> dict[str, Any] | None:
        """The plan record when the run stopped at the plan checkpoint (`pipeline.plan`)."""
        if self.waiting_plan is not None:
            return self.waiting_plan
        return self.state.plan_stop if self.state is not None else None


@dataclass(slots=True)
class RevisionResult:
    revision: Revision
    #: The calls the revision made (replayed ones marked), in order.
    calls: list[CallRecord]
    decisions: list[Decision]


def _cancelled_report(
    analysis: AnalysisResult, settings: Settings, ledger: Ledger, wall_s: float, seen: EventCounts
) -> Report:
    state = CourseState(analysis=analysis, course_id=course_id_for(analysis), lesson_counts=[])
    state.failure = "cancelled while running"
    report = build_report(
        state,
        None,
        ledger,
        settings,
        wall_s=wall_s,
        transport_retries=seen.retry_count(),
        faults=seen.fault_counts(),
    )
    report.status = "cancelled"
    report.summary["cancelled_in_flight"] = sum(1 for r in report.calls if r.outcome == "cancelled")
    return report


def course_id_for(analysis: AnalysisResult) -> str:
    """The input's course_id, else a stable id from the topic and the input's digest."""
    if analysis.course_id:
        return analysis.course_id
    slug = re.sub(r"[^a-z0-9]+", "-", analysis.topic.lower()).strip("-")[:40] or "course"
    digest = hashlib.sha256(analysis.model_dump_json().encode()).hexdigest()[:8]
    return f"{slug}-{digest}"


async def run_course(
    analysis: AnalysisResult,
    settings: Settings,
    runtime: Runtime,
    *,
    checkpoints: Checkpoints | None = None,
    progress: Callable[[ProgressEvent], None] | None = None,
    on_cancel: Callable[[Report], None] | None = None,
    cache: ResponseCache | None = None,
    batcher: BatchRoute | None = None,
    plan: PlanControl | None = None,
    bank: Sequence[Exercise] = (),
) -> GenerationResult:
    """Generate one course (phase 1, validation, happened when `analysis` was built);
    `cache` serves answers kept by earlier jobs (see `engine.caching`).

    Cancelled, it hands `on_cancel` the report of what the run had spent (every call sent,
    those in flight marked "cancelled"), status "cancelled", before the cancellation goes on.
    A tenant's jobs get the tenant's own `cache` namespace (`jobs.InProcessRunner.cache_for`)."""
    cap = course_cap(analysis, settings)
    ledger = Ledger(cap, phase_caps_usd=phase_caps(cap, settings))
    calls = CourseCalls(settings, runtime, ledger, checkpoints=checkpoints, cache=cache, batcher=batcher)
    ctx = PipelineContext(settings, calls, ledger.cap_usd, plan=plan, bank=tuple(bank))
    if progress is not None:
        ctx.progress = _with_spend(progress, ledger)
    traced = {"courseforge.course_id": course_id_for(analysis), "courseforge.profile": settings.profile}
    # This course's resilience events only, even when other courses share the runtime.
    with span("course", traced) as course_span, runtime.events() as seen:
        started = runtime.clock.monotonic()
        # The gates' models load while metadata is generated: off the critical path.
        warming = asyncio.ensure_future(runtime.warm()) if runtime.warm else None
        try:
            result = await run_pipeline(analysis, course_id_for(analysis), ctx)
        except asyncio.CancelledError:
            if on_cancel is not None:
                on_cancel(
                    _cancelled_report(analysis, settings, ledger, runtime.clock.monotonic() - started, seen)
                )
            raise
        finally:
            if warming is not None:  # best effort: never keep a finished run waiting for it
                warming.cancel()
                with contextlib.suppress(BaseException):
                    await warming
        wall = runtime.clock.monotonic() - started
        _trace_outcome(course_span, result.course, result.state.failure, ledger)
    report = build_report(
        result.state,
        result.course,
        ledger,
        settings,
        wall_s=wall,
        transport_retries=seen.retry_count(),
        faults=seen.fault_counts(),
    )
    if runtime.breakers is not None:
        report.breakers = runtime.breakers()
    return GenerationResult(result.course, report, result.state)


def _trace_outcome(course_span: SpanHandle, course: Course | None, failure: str, ledger: Ledger) -> None:
    """The course's outcome on its span: status, what it cost, how many calls."""
    course_span.set(
        {
            "courseforge.status": course.status if course is not None else "failed",
            "courseforge.cost_usd": float(ledger.spent),
            "courseforge.budget_usd": float(ledger.cap_usd),
            "courseforge.calls": len(ledger.records),
        }
    )
    if course is None:
        course_span.error("generation_failed", failure)


def _with_spend(progress: Callable[[ProgressEvent], None], ledger: Ledger) -> Callable[[ProgressEvent], None]:
    """Every progress event stamped with what the course has spent of its cap so far."""

    def stamped(event: ProgressEvent) -> None:
        progress(replace(event, spent_usd=round(float(ledger.spent), 6), budget_usd=float(ledger.cap_usd)))

    return stamped
