"""The plan checkpoint of a durable job: show, edit and approve the plan a job stopped at
(status "plan_review", `generate --review-plan` or `review_plan: true`). The CLI's
`courseforge plan` and the service's `/v1/jobs/{id}/plan` routes are adapters over these.

An edit is gated before it is kept (`pipeline.plan.gate_plan`: its shape, then phase 2's
metadata gates; embeddings only, nothing paid): a refused edit raises `PlanRefused` with every
reason and leaves the stored plan as it was. Approving marks the plan approved; the job's next
run replays phase 2 from its checkpoints, re-gates and applies the plan, and pays for lessons.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from ..config import Settings
from ..domain import AnalysisResult, CoursePlan
from ..errors import UserError
from ..ledger import course_cap
from ..pipeline.plan import apply_plan, embedding_context, gate_plan, plan_of, plan_record, state_from_record
from ..storage import Job, Store

__all__ = ["PlanRefused", "approve_plan", "edit_plan", "gate_edit", "job_plan"]


class PlanRefused(UserError):
    """An edited plan the gates refused (each problem names the plan's part and the reason)."""


async def _reviewable(store: Store, job_id: str) -> tuple[Job, dict[str, Any]]:
    job = await store.get_job(job_id)
    if job is None:
        raise UserError("no such job", [("job", f"{job_id!r} not found")])
    record = job.progress.get("plan")
    if not isinstance(record, dict):
        raise UserError(
            "no plan to review",
            [("job", f"job {job_id!r} is {job.status} and never stopped for a plan review (--review-plan)")],
        )
    return job, record


async def job_plan(store: Store, job_id: str) -> tuple[Job, CoursePlan, str]:
    """The job, its plan and the plan's state ("review" or "approved")."""
    job, record = await _reviewable(store, job_id)
    return job, CoursePlan.model_validate(record["plan"]), str(record.get("state", "review"))


async def gate_edit(
    settings: Settings,
    analysis: AnalysisResult,
    course_id: str,
    record: dict[str, Any],
    edited: CoursePlan,
    embed: Callable[[Sequence[str]], Any],
) -> dict[str, Any]:
    """The plan record with `edited` in it (re-estimated), or `PlanRefused` when the gates
    refuse it. Where the record lives is the caller's: a job's progress, or the Temporal
    workflow waiting for its author (`distributed.client.edit_workflow_plan`)."""
    state = state_from_record(analysis, course_id, record)
    ctx = embedding_context(settings, embed, course_cap(analysis, settings))
    problems = await gate_plan(state, edited, ctx)
    if problems:
        raise PlanRefused("plan refused by the metadata gates (not applied)", [("plan", p) for p in problems])
    apply_plan(state, edited)
    spent = Decimal(str(record["plan"].get("spent_usd", 0)))
    plan = plan_of(state, ctx, spent_usd=spent)
    kept = {k: v for k, v in record.items() if k not in ("problems",)}
    return {**kept, **plan_record(state, plan), "edited": True}


async def edit_plan(
    store: Store,
    settings: Settings,
    job_id: str,
    edited: CoursePlan,
    embed: Callable[[Sequence[str]], Any],
) -> CoursePlan:
    """Gate `edited` and keep it (re-estimated) as the job's plan; `PlanRefused` when the
    gates refuse it (nothing kept). Only while the job is in "plan_review"."""
    job, record = await _reviewable(store, job_id)
    if job.status != "plan_review":
        raise UserError("plan not editable", [("job", f"job {job_id!r} is {job.status}, not plan_review")])
    analysis = AnalysisResult.model_validate(job.analysis)
    job.progress["plan"] = await gate_edit(settings, analysis, job.course_id, record, edited, embed)
    await store.update_job(job_id, progress=job.progress)
    return CoursePlan.model_validate(job.progress["plan"]["plan"])


async def approve_plan(store: Store, job_id: str) -> CoursePlan:
    """Mark the job's plan approved: its next run goes on from it."""
    job, record = await _reviewable(store, job_id)
    if job.status != "plan_review":
        raise UserError("plan not approvable", [("job", f"job {job_id!r} is {job.status}, not plan_review")])
    job.progress["plan"] = {**record, "state": "approved"}
    await store.update_job(job_id, progress=job.progress)
    return CoursePlan.model_validate(record["plan"])
