"""/v1/jobs: submit an analysis_result, list jobs, a job's status, its live events, its course and
report, cancel it. Another tenant's job answers 404, as if absent."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.params import Depends
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from ..config import Settings
from ..domain import AnalysisResult, Exercise
from ..errors import UserError
from ..exports.bank_import import parse_bank
from ..jobs import input_digest, job_bank
from ..jobs.review_service import course_tag
from ..pipeline import parse_analysis
from ..storage import Job, Store, StoreBusy
from .api_errors import ERRORS, ApiError
from .manager import JobManager, QueueFull
from .tenants import Caller, TenantLimits, current_caller, may_see

__all__ = ["ID_PATTERN", "JobId", "JobList", "JobView", "add_job_routes", "event_stream", "visible_job"]

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
JobId = Annotated[str, Path(pattern=ID_PATTERN, description="Job id")]


class JobView(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    course_id: str
    status: str
    course_status: str = ""
    progress: dict[str, Any] = Field(default_factory=dict)
    error: str = ""
    runs: int = 0
    cancel_requested: bool = False
    #: The tenant that submitted it ("" the default tenant, the CLI's).
    tenant: str = ""
    created_at: float
    updated_at: float
    links: dict[str, str] = Field(default_factory=dict)

    @classmethod
    def of(cls, job: Job) -> JobView:
        base = f"/v1/jobs/{job.id}"
        return cls(
            id=job.id,
            course_id=job.course_id,
            status=job.status,
            course_status=job.course_status,
            progress=_shown_progress(job.progress),
            error=job.error,
            runs=job.runs,
            cancel_requested=job.cancel_requested,
            tenant=job.tenant,
            created_at=job.created_at,
            updated_at=job.updated_at,
            links={
                "self": base,
                "events": f"{base}/events",
                "course": f"{base}/course",
                "report": f"{base}/report",
                "cancel": f"{base}/cancel",
                "plan": f"{base}/plan",
            },
        )


class JobList(BaseModel):
    jobs: list[JobView]


async def visible_job(store: Store, job_id: str) -> Job:
    """The job, if the caller may see it (another tenant's answers 404, as if absent)."""
    job = await store.get_job(job_id)
    if job is None or not may_see(job):
        raise ApiError(404, "no such job", [("path.job_id", f"{job_id!r} not found")])
    return job


def event_stream(store: Store, manager: JobManager, job: Job, request: Request) -> StreamingResponse:
    """Server-sent events of `job`: `snapshot`, each `progress` event, the final `status`. A job
    this process does not have (another service process on the store runs it, or none has
    taken it yet) is followed in the store: a `snapshot` whenever its saved progress or status
    changes (every `service.store_poll_s`), then `status`."""
    queue = manager.subscribe(job.id)
    poll_s = manager.settings.service.store_poll_s

    async def stream() -> AsyncIterator[str]:
        try:
            yield _sse("snapshot", JobView.of(job).model_dump(mode="json"))
            seen, quiet = (job.status, job.progress), 0.0
            while True:
                if not manager.runs_here(job.id):
                    try:
                        current = await store.get_job(job.id) or job
                    except StoreBusy:  # the stream goes on: the next poll looks again
                        current = None
                    if current is not None and current.status not in ("queued", "running"):
                        yield _sse("status", {"status": current.status})
                        return
                    if current is not None and (current.status, current.progress) != seen:
                        seen = (current.status, current.progress)
                        yield _sse("snapshot", JobView.of(current).model_dump(mode="json"))
                try:
                    item = await asyncio.wait_for(queue.get(), poll_s)
                except TimeoutError:
                    quiet += poll_s
                    if quiet >= 15:
                        quiet = 0.0
                        if await request.is_disconnected():
                            return
                        yield ": keep-alive\n\n"
                    continue
                yield _sse(item["event"], item["data"])
                if item["event"] == "status":
                    return
        finally:
            manager.unsubscribe(job.id, queue)

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


def add_job_routes(
    router: APIRouter,
    settings: Settings,
    store: Store,
    manager: JobManager,
    limits: TenantLimits,
    auth: list[Depends],
) -> None:
    """The /v1/jobs routes on `router` (the app's own: each route listed in `app.routes`)."""

    @router.post(
        "/v1/jobs",
        status_code=202,
        response_model=JobView,
        dependencies=auth,
        responses={
            **ERRORS,
            200: {
                "model": JobView,
                "description": "the job an earlier request with this Idempotency-Key made",
            },
        },
    )
    async def submit_job(
        request: Request,
        idempotency_key: Annotated[str | None, Header(pattern=r"^[\x21-\x7e]{1,200}$")] = None,
        mode: Annotated[Literal["normal", "batch"], Query()] = "normal",
        review_plan: Annotated[bool, Query()] = False,
    ) -> JSONResponse:
        """Submit an analysis_result; 202 with the job. The same `Idempotency-Key` with the same
        body (and the same question bank, or none) returns the first job (200); with another, 409. `?mode=batch` generates it
        through the providers' batch APIs (half price, slower; `progress.mode` says so);
        `?review_plan=true` stops it after phase 2 with status plan_review (`/v1/jobs/{id}/plan`).
        A question bank goes with it as `multipart/form-data`: the part `analysis` (the JSON)
        and the part `question_bank` (a GIFT, Moodle XML or QTI 2.1 file, docs/authoring.md)."""
        key = idempotency_key.strip() if idempotency_key else None
        if key is not None and not re.fullmatch(r"[\x21-\x7e]{1,200}", key):
            raise ApiError(
                400, "bad Idempotency-Key", [("header.Idempotency-Key", "1-200 visible ASCII characters")]
            )
        await _refuse_early_when_full(request, store, manager, key)
        raw, bank = await _submission(request)
        try:
            analysis = parse_analysis(raw, max_bytes=settings.max_input_bytes)
        except UserError as exc:
            raise ApiError(
                422, exc.headline, [(f"body{p[1:]}" if p.startswith("$") else p, r) for p, r in exc.problems]
            ) from exc
        return await _submit(
            store, manager, limits, analysis, key, mode=mode, review_plan=review_plan, bank=bank
        )

    @router.get("/v1/jobs", response_model=JobList, dependencies=auth, responses=ERRORS)
    async def list_jobs(
        status: Annotated[
            Literal["queued", "running", "completed", "failed", "cancelled", "plan_review"] | None, Query()
        ] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    ) -> JobList:
        jobs = await store.list_jobs(
            status=status, limit=limit, offset=offset, tenant=current_caller().scope()
        )
        return JobList(jobs=[JobView.of(j) for j in jobs])

    async def _stored(
        job_id: str, load: Callable[[str], Awaitable[dict[str, Any] | None]], what: str
    ) -> JSONResponse:
        """A job's stored course or report; 404 for an unknown job or one without it yet."""
        job = await visible_job(store, job_id)
        body = await load(job_id)
        if body is None:
            raise ApiError(404, f"no {what} yet", [("path.job_id", f"job is {job.status}")])
        return JSONResponse(body)

    @router.get("/v1/jobs/{job_id}", response_model=JobView, dependencies=auth, responses=ERRORS)
    async def get_job(job_id: JobId) -> JobView:
        """Status and per-phase progress."""
        return JobView.of(await visible_job(store, job_id))

    @router.get(
        "/v1/jobs/{job_id}/events",
        dependencies=auth,
        responses={
            **ERRORS,
            200: {"content": {"text/event-stream": {}}, "description": "Server-sent events"},
        },
    )
    async def job_events(job_id: JobId, request: Request) -> StreamingResponse:
        """Server-sent events: `snapshot` (the job now), `progress` (each phase/task event),
        `status` (final state); the stream ends when the job does."""
        return event_stream(store, manager, await visible_job(store, job_id), request)

    @router.get("/v1/jobs/{job_id}/course", dependencies=auth, responses=ERRORS)
    async def get_course(job_id: JobId) -> JSONResponse:
        """The course JSON (404 until the job has completed), with its version as `ETag` (send it
        back as `If-Match` on a review action to make the action conditional on it)."""
        job = await visible_job(store, job_id)
        stored = await store.get_course_version(job_id)
        if stored is None:
            raise ApiError(404, "no course yet", [("path.job_id", f"job is {job.status}")])
        return JSONResponse(stored[0], headers={"ETag": course_tag(stored[1])})

    @router.get("/v1/jobs/{job_id}/report", dependencies=auth, responses=ERRORS)
    async def get_report(job_id: JobId) -> JSONResponse:
        """The generation report (404 until a run has finished)."""
        return await _stored(job_id, store.get_report, "report")

    @router.post("/v1/jobs/{job_id}/cancel", response_model=JobView, dependencies=auth, responses=ERRORS)
    async def cancel_job(job_id: JobId) -> JobView:
        """Stop a queued or running job (what it paid for stays checkpointed)."""
        job = await visible_job(store, job_id)
        if job.finished:
            raise ApiError(409, "job already finished", [("path.job_id", f"job is {job.status}")])
        cancelled = await manager.cancel(job_id)
        return JobView.of(cancelled or job)


async def _submit(
    store: Store,
    manager: JobManager,
    limits: TenantLimits,
    analysis: AnalysisResult,
    key: str | None,
    *,
    mode: str,
    review_plan: bool,
    bank: list[Exercise],
) -> JSONResponse:
    """The caller's job for `analysis`: the one an earlier request with this key made (200, or
    409 for another body), else a new one within the tenant's limits (202)."""
    caller = current_caller()
    if key:
        existing = await store.find_job_by_key(key, tenant=caller.tenant)
        if existing is not None:
            return _same_or_conflict(existing, analysis, bank)
    await _within_tenant_limits(limits, caller, analysis)
    try:
        job, created = await manager.submit(
            analysis,
            f"job-{uuid.uuid4().hex[:16]}",
            key,
            mode=mode,
            tenant=caller.tenant,
            review_plan=review_plan,
            bank=bank,
        )
    except QueueFull as exc:
        raise queue_full(exc) from exc
    if not created:
        return _same_or_conflict(job, analysis, bank)
    return JSONResponse(JobView.of(job).model_dump(mode="json"), status_code=202)


async def _refuse_early_when_full(
    request: Request, store: Store, manager: JobManager, key: str | None
) -> None:
    """With the queue full, a submission that is not the repeat of one already accepted (its
    Idempotency-Key names no job) is refused before its body is read and validated: at a term's
    start, clients sending again after Retry-After make most submissions refusals, and those
    must cost the service as little as possible. A repeat goes on, to get its job (or a 409).
    A key found to name no job is not looked up again for a minute (`JobManager.known_absent`):
    those lookups took the requests' store connections the dashboard waits for."""
    try:
        manager.check_room(count=False)
    except QueueFull as exc:
        tenant = current_caller().tenant
        if key is not None and not manager.known_absent(tenant, key):
            if await store.find_job_by_key(key, tenant=tenant) is not None:
                return  # a repeat: `_submit` answers it with its job
            manager.note_absent(tenant, key)
        manager.metrics.jobs_refused.inc()
        await request.body()  # read, not parsed: the connection stays usable
        raise queue_full(exc) from exc


def queue_full(exc: QueueFull) -> ApiError:
    """The 503 of a full job queue, with the seconds to wait as `Retry-After`."""
    reason = (
        f"{exc.waiting} jobs already wait for a slot (service.max_queued_jobs); "
        f"send it again in {exc.retry_after_s} s"
    )
    return ApiError(
        503, "job queue full", [("queue", reason)], headers={"Retry-After": str(exc.retry_after_s)}
    )


def _shown_progress(progress: dict[str, Any]) -> dict[str, Any]:
    """A job's progress as the API shows it: its question bank counted, not listed (a bank is
    hundreds of questions; every job list would carry them)."""
    if "bank" not in progress:
        return progress
    shown = {k: v for k, v in progress.items() if k != "bank"}
    shown["bank_questions"] = len(progress["bank"] or ())
    return shown


async def _submission(request: Request) -> tuple[bytes, list[Exercise]]:
    """The analysis_result's bytes and the question bank's questions: a JSON body, or the parts
    `analysis` and `question_bank` of a multipart form (the bank read like `--question-bank`)."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        return await request.body(), []
    try:
        form = await request.form(max_files=2, max_fields=2)
    except Exception as exc:  # the multipart parser's own errors
        if "Too many" in str(exc):  # well-formed, but parts beyond the two it may carry
            raise ApiError(
                422, "unknown form part", [("form", "expected only the parts analysis and question_bank")]
            ) from exc
        raise ApiError(400, "bad multipart body", [("body", str(exc)[:200])]) from exc
    unknown = sorted(set(form) - {"analysis", "question_bank"})
    if unknown:
        raise ApiError(
            422, "unknown form part", [(f"form.{unknown[0]}", "expected analysis and question_bank")]
        )

    async def part(name: str) -> bytes | None:
        value = form.get(name)
        if value is None:
            return None
        return value.encode() if isinstance(value, str) else await value.read()

    analysis, bank_raw = await part("analysis"), await part("question_bank")
    if analysis is None:
        raise ApiError(422, "no analysis_result", [("form.analysis", "the analysis_result JSON is required")])
    if bank_raw is None:
        return analysis, []
    try:
        bank = parse_bank(bank_raw, "form.question_bank")
    except UserError as exc:
        raise ApiError(422, exc.headline, exc.problems) from exc
    return analysis, bank.questions


async def _within_tenant_limits(limits: TenantLimits, caller: Caller, analysis: AnalysisResult) -> None:
    wait = await limits.rate_exceeded(caller.tenant)
    if wait is not None:
        reason = f"{caller.tenant!r} may submit again in {wait:.0f} s (service.tenants jobs_per_minute)"
        raise ApiError(429, "too many jobs submitted", [("tenant", reason)])
    left = await limits.budget_left(caller.tenant)
    cap = limits.cap_of(analysis.model_dump(mode="json"))
    if left is not None and cap > left:
        reason = (
            f"{caller.tenant!r} has {max(left, Decimal(0)):.4f} USD left of its 24-hour budget; "
            f"this job may spend up to {cap} USD"
        )
        raise ApiError(402, "tenant budget exhausted", [("tenant", reason)])


def _same_or_conflict(job: Job, analysis: AnalysisResult, bank: list[Exercise]) -> JSONResponse:
    """The earlier job of an Idempotency-Key when this request is the same one again: the same
    analysis and the same question bank (or none with none); else 409."""
    digest = input_digest(analysis.model_dump(mode="json", exclude_unset=True))
    if digest != job.input_digest or _bank_digest(bank) != _bank_digest(job_bank(job)):
        raise ApiError(
            409,
            "Idempotency-Key reused with another body",
            [("header.Idempotency-Key", f"belongs to job {job.id}")],
        )
    return JSONResponse(JobView.of(job).model_dump(mode="json"), status_code=200)


def _bank_digest(bank: list[Exercise]) -> str:
    return input_digest({"bank": [q.model_dump(mode="json") for q in bank]})


def _sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False, default=str)}\n\n"
