"""/v1/jobs/{id}/plan: the plan a job stopped at (`POST /v1/jobs?review_plan=true`), edited
(gated first: 422 with the gates' problems, nothing kept) and approved (the job resumes).
Adapters over `jobs.plans` (docs/authoring.md)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.params import Depends

from ..config import Settings
from ..domain import CoursePlan
from ..errors import UserError
from ..jobs import PlanRefused, approve_plan, edit_plan, job_plan
from ..storage import Store
from .api_errors import ERRORS, ApiError
from .api_jobs import JobId, JobView, visible_job
from .manager import JobManager

__all__ = ["PlanView", "add_plan_routes"]


class PlanView(CoursePlan):
    """The plan and its state: "review" (editable) or "approved"."""

    state: str = "review"


def _api_error(exc: UserError) -> ApiError:
    status = 422 if isinstance(exc, PlanRefused) else 409
    return ApiError(status, exc.headline, exc.problems)


def add_plan_routes(
    router: APIRouter, settings: Settings, store: Store, manager: JobManager, auth: list[Depends]
) -> None:
    """The plan routes on `router`."""

    @router.get("/v1/jobs/{job_id}/plan", response_model=PlanView, dependencies=auth, responses=ERRORS)
    async def get_plan(job_id: JobId) -> PlanView:
        """The plan: metadata, outcomes, lessons (outcome mapping, start tier, estimated cost),
        the projected cost against the budget. 409 when the job never stopped for review."""
        await visible_job(store, job_id)
        try:
            _job, plan, state = await job_plan(store, job_id)
        except UserError as exc:
            raise _api_error(exc) from exc
        return PlanView(**plan.model_dump(), state=state)

    @router.put("/v1/jobs/{job_id}/plan", response_model=PlanView, dependencies=auth, responses=ERRORS)
    async def put_plan(job_id: JobId, plan: CoursePlan) -> PlanView:
        """Replace the plan (read-only figures in the body are ignored and recomputed). Gated
        before it is kept: 422 with every reason, the stored plan unchanged; 409 when the job is
        not in plan_review."""
        await visible_job(store, job_id)
        try:
            kept = await edit_plan(store, settings, job_id, plan, manager.engine.embedder().embed)
        except UserError as exc:
            raise _api_error(exc) from exc
        return PlanView(**kept.model_dump(), state="review")

    @router.post(
        "/v1/jobs/{job_id}/plan/approve", response_model=JobView, dependencies=auth, responses=ERRORS
    )
    async def approve(job_id: JobId) -> JobView:
        """Approve the plan; the job resumes (phase 2 replayed, the plan re-gated and applied,
        then the lessons). 409 when the job is not in plan_review."""
        await visible_job(store, job_id)
        try:
            await approve_plan(store, job_id)
        except UserError as exc:
            raise _api_error(exc) from exc
        await manager.resume(job_id)
        return JobView.of(await visible_job(store, job_id))
