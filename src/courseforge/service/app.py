"""The HTTP API (FastAPI): jobs, their events, courses and reports, the review queue, metrics.

Every /v1 endpoint needs `Authorization: Bearer <token>` with a token from
`$COURSEFORGE_API_TOKENS` (comma-separated) or a tenant's variable (`service.tenants`, see
`tenants.py`: each caller sees only its tenant's jobs and reviews); /health and /metrics do not. Bad input is a 4xx
whose body names the field: `{"error": {"message", "problems": [{"path", "reason"}]}}`.
Anything unexpected is logged (type only) and answered 503, never a 500 with a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Header, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..config import Settings
from ..domain import AnalysisResult
from ..engine import Engine
from ..errors import UserError
from ..jobs import input_digest, unanswered_reviews
from ..jobs.reviews import edit_verdicts
from ..pipeline import parse_analysis
from ..storage import Job, ReviewItem, Store, StoreConflict
from .docs import mount_docs
from .exports import export_router
from .limits import BodySizeLimit
from .manager import JobManager
from .metrics import ServiceMetrics
from .tenants import Caller, TenantDirectory, TenantLimits, current_caller, may_see, set_caller
from .ui import ui_router

__all__ = ["ApiError", "create_app"]

log = logging.getLogger("courseforge.service")

_ID = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
JobId = Annotated[str, Path(pattern=_ID, description="Job id")]
ReviewId = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,300}$", description="Review item id")]


class ApiError(Exception):
    def __init__(self, status: int, message: str, problems: Sequence[tuple[str, str]] = ()) -> None:
        self.status, self.message, self.problems = status, message, list(problems)
        super().__init__(message)


def _error_body(message: str, problems: Sequence[tuple[str, str]] = ()) -> dict[str, Any]:
    return {"error": {"message": message, "problems": [{"path": p, "reason": r} for p, r in problems]}}


# -- response models (the OpenAPI document is generated from these) --------------------------
class Problem(BaseModel):
    path: str
    reason: str


class ErrorDetail(BaseModel):
    message: str
    problems: list[Problem] = Field(default_factory=list)


class ErrorBody(BaseModel):
    error: ErrorDetail


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
            progress=job.progress,
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
            },
        )


class JobList(BaseModel):
    jobs: list[JobView]


class ReviewView(BaseModel):
    id: str
    job_id: str
    target: str
    reason: str
    gate: str
    uncertainty: float
    status: str
    resolution: dict[str, Any]
    created_at: float
    updated_at: float


class ReviewList(BaseModel):
    reviews: list[ReviewView]


class ReviewAction(BaseModel):
    """approve: accept as is. edit: replace the lesson's markdown with `content`; the edit goes
    through the lesson's gates first and, failing any, is refused (422, each failing gate named)
    unless `approve_anyway` with the reason in `note`. regenerate: generate the lesson again,
    with `note` as the reviewer's feedback."""

    model_config = ConfigDict(extra="forbid")
    action: Literal["approve", "edit", "regenerate"]
    note: str = Field(default="", max_length=2000)
    content: str | None = Field(default=None, min_length=1, max_length=200_000)
    approve_anyway: bool = False


class Health(BaseModel):
    status: str
    store: str
    jobs_running: int
    jobs_queued: int


_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (400, 401, 402, 404, 409, 412, 413, 422, 429, 503)
}
#: Times a review action is re-applied to a course another action changed first.
_COURSE_WRITE_ATTEMPTS = 8


def _analysis_openapi(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document with the analysis_result schema as POST /v1/jobs's body (the
    endpoint reads the raw body itself, to validate it exactly like `courseforge validate`)."""
    from fastapi.openapi.utils import get_openapi

    doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    schema = AnalysisResult.model_json_schema(mode="validation", ref_template="#/components/schemas/{model}")
    components = doc.setdefault("components", {}).setdefault("schemas", {})
    components.update(schema.pop("$defs", {}))
    components["AnalysisResult"] = schema
    post = doc["paths"]["/v1/jobs"]["post"]
    post["requestBody"] = {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/AnalysisResult"}}},
    }
    doc.setdefault("components", {})["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    for path, operations in doc["paths"].items():
        if path.startswith("/v1/"):  # every /v1 operation needs the bearer token
            for operation in operations.values():
                operation["security"] = [{"bearer": []}]
    return doc


def create_app(
    settings: Settings,
    *,
    store: Store,
    engine: Engine,
    tokens: Sequence[str] | Mapping[str, str],
    resume: bool = True,
    close_on_shutdown: bool = False,
) -> FastAPI:
    """The ASGI app. `tokens`: accepted bearer tokens, as token -> tenant (`tenants.tenant_tokens`)
    or a list (all of the default tenant ""); empty: every /v1 request is refused."""
    directory = TenantDirectory(
        tokens if isinstance(tokens, Mapping) else dict.fromkeys(tokens, ""), settings
    )
    limits = TenantLimits(settings, store)
    metrics = ServiceMetrics()
    manager = JobManager(
        settings, store, engine, metrics, max_concurrent=settings.service.max_concurrent_jobs
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await store.init()
        # Every call of this app's jobs counted as it is recorded, every breaker change.
        unhook = engine.add_hook(metrics)
        # The gates' models load while the service starts taking requests, not in its first job.
        warming = asyncio.create_task(engine.warm())
        if resume:
            await manager.start()
        try:
            yield
        finally:
            unhook()
            warming.cancel()
            with contextlib.suppress(BaseException):
                await warming
            await manager.stop()
            if close_on_shutdown:
                await engine.aclose()
                await store.close()

    app = FastAPI(
        title="courseforge",
        version="1",
        description="Course generation jobs, their reports and the human-review queue.",
        lifespan=lifespan,
        docs_url=None,  # served by `docs.mount_docs` from local assets, never a CDN
        redoc_url=None,
    )
    mount_docs(app)
    app.state.manager = manager
    app.state.metrics = metrics
    app.add_middleware(BodySizeLimit, max_bytes=settings.service.max_body_bytes)

    async def require_token(authorization: Annotated[str | None, Header()] = None) -> None:
        # async: it runs in the request's own context, so the caller it sets is the endpoint's.
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise ApiError(
                401, "missing bearer token", [("header.Authorization", "expected 'Bearer <token>'")]
            )
        caller = directory.caller_for(token.strip())
        if caller is None:
            raise ApiError(401, "invalid token", [("header.Authorization", "token not accepted")])
        set_caller(caller)

    auth = [Depends(require_token)]

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse(_error_body(exc.message, exc.problems), status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [(".".join(str(p) for p in e.get("loc", ())), str(e.get("msg", ""))) for e in exc.errors()]
        return JSONResponse(_error_body("invalid request", problems), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and str(exc.detail).startswith("There was an error parsing the body"):
            # FastAPI's answer when its JSON parser raised something other than a syntax error
            # (RecursionError for a body nested 100,000 deep): the body is at fault, say so.
            problem = ("body", "cannot be parsed (nested too deeply, or not JSON)")
            return JSONResponse(_error_body("invalid request", [problem]), status_code=422)
        return JSONResponse(_error_body(str(exc.detail)), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected %s on %s %s", type(exc).__name__, request.method, request.url.path)
        return JSONResponse(_error_body("temporarily unavailable"), status_code=503)

    # -- jobs ----------------------------------------------------------------------------------
    @app.post("/v1/jobs", status_code=202, response_model=JobView, dependencies=auth, responses=_ERRORS)
    async def submit_job(
        request: Request,
        idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
        mode: Annotated[Literal["normal", "batch"], Query()] = "normal",
    ) -> JSONResponse:
        """Submit an analysis_result; 202 with the job. The same `Idempotency-Key` with the same
        body returns the first job (200); with another body, 409. `?mode=batch` generates it
        through the providers' batch APIs (half price, slower; `progress.mode` says so)."""
        raw = await request.body()
        try:
            analysis = parse_analysis(raw, max_bytes=settings.max_input_bytes)
        except UserError as exc:
            raise ApiError(
                422, exc.headline, [(f"body{p[1:]}" if p.startswith("$") else p, r) for p, r in exc.problems]
            ) from exc
        key = idempotency_key.strip() if idempotency_key else None
        if key is not None and not re.fullmatch(r"[\x21-\x7e]{1,200}", key):
            raise ApiError(
                400, "bad Idempotency-Key", [("header.Idempotency-Key", "1-200 visible ASCII characters")]
            )
        caller = current_caller()
        if key:
            existing = await store.find_job_by_key(key, tenant=caller.tenant)
            if existing is not None:
                return _same_or_conflict(existing, analysis)
        await _within_tenant_limits(caller, analysis)
        job, created = await manager.submit(
            analysis, f"job-{uuid.uuid4().hex[:16]}", key, mode=mode, tenant=caller.tenant
        )
        if not created:
            return _same_or_conflict(job, analysis)
        return JSONResponse(JobView.of(job).model_dump(mode="json"), status_code=202)

    async def _within_tenant_limits(caller: Caller, analysis: AnalysisResult) -> None:
        wait = limits.rate_exceeded(caller.tenant)
        if wait is not None:
            raise ApiError(
                429,
                "too many jobs submitted",
                [
                    (
                        "tenant",
                        f"{caller.tenant!r} may submit again in {wait:.0f} s (service.tenants jobs_per_minute)",
                    )
                ],
            )
        left = await limits.budget_left(caller.tenant)
        cap = limits.cap_of(analysis.model_dump(mode="json"))
        if left is not None and cap > left:
            raise ApiError(
                402,
                "tenant budget exhausted",
                [
                    (
                        "tenant",
                        f"{caller.tenant!r} has {max(left, Decimal(0)):.4f} USD left of its 24-hour budget; "
                        f"this job may spend up to {cap} USD",
                    )
                ],
            )

    def _same_or_conflict(job: Job, analysis: AnalysisResult) -> JSONResponse:
        digest = input_digest(analysis.model_dump(mode="json", exclude_unset=True))
        if digest != job.input_digest:
            raise ApiError(
                409,
                "Idempotency-Key reused with another body",
                [("header.Idempotency-Key", f"belongs to job {job.id}")],
            )
        return JSONResponse(JobView.of(job).model_dump(mode="json"), status_code=200)

    @app.get("/v1/jobs", response_model=JobList, dependencies=auth, responses=_ERRORS)
    async def list_jobs(
        status: Annotated[
            Literal["queued", "running", "completed", "failed", "cancelled"] | None, Query()
        ] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    ) -> JobList:
        jobs = await store.list_jobs(
            status=status, limit=limit, offset=offset, tenant=current_caller().scope()
        )
        return JobList(jobs=[JobView.of(j) for j in jobs])

    async def _job(job_id: str) -> Job:
        """The job, if the caller may see it (another tenant's answers 404, as if absent)."""
        job = await store.get_job(job_id)
        if job is None or not may_see(job):
            raise ApiError(404, "no such job", [("path.job_id", f"{job_id!r} not found")])
        return job

    async def _stored(
        job_id: str, load: Callable[[str], Awaitable[dict[str, Any] | None]], what: str
    ) -> JSONResponse:
        """A job's stored course or report; 404 for an unknown job or one without it yet."""
        job = await _job(job_id)
        body = await load(job_id)
        if body is None:
            raise ApiError(404, f"no {what} yet", [("path.job_id", f"job is {job.status}")])
        return JSONResponse(body)

    @app.get("/v1/jobs/{job_id}", response_model=JobView, dependencies=auth, responses=_ERRORS)
    async def get_job(job_id: JobId) -> JobView:
        """Status and per-phase progress."""
        return JobView.of(await _job(job_id))

    @app.get(
        "/v1/jobs/{job_id}/events",
        dependencies=auth,
        responses={
            **_ERRORS,
            200: {"content": {"text/event-stream": {}}, "description": "Server-sent events"},
        },
    )
    async def job_events(job_id: JobId, request: Request) -> StreamingResponse:
        """Server-sent events: `snapshot` (the job now), `progress` (each phase/task event),
        `status` (final state); the stream ends when the job does."""
        job = await _job(job_id)
        queue = manager.subscribe(job_id)

        async def stream() -> AsyncIterator[str]:
            try:
                yield _sse("snapshot", JobView.of(job).model_dump(mode="json"))
                if job.finished or not manager.is_active(job_id):
                    current = await store.get_job(job_id)
                    yield _sse("status", {"status": (current or job).status})
                    return
                while True:
                    try:
                        item = await asyncio.wait_for(queue.get(), 15)
                    except TimeoutError:
                        if await request.is_disconnected():
                            return
                        yield ": keep-alive\n\n"
                        continue
                    yield _sse(item["event"], item["data"])
                    if item["event"] == "status":
                        return
            finally:
                manager.unsubscribe(job_id, queue)

        return StreamingResponse(
            stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )

    @app.get("/v1/jobs/{job_id}/course", dependencies=auth, responses=_ERRORS)
    async def get_course(job_id: JobId) -> JSONResponse:
        """The course JSON (404 until the job has completed), with its version as `ETag` (send it
        back as `If-Match` on a review action to make the action conditional on it)."""
        job = await _job(job_id)
        stored = await store.get_course_version(job_id)
        if stored is None:
            raise ApiError(404, "no course yet", [("path.job_id", f"job is {job.status}")])
        return JSONResponse(stored[0], headers={"ETag": _etag(stored[1])})

    @app.get("/v1/jobs/{job_id}/report", dependencies=auth, responses=_ERRORS)
    async def get_report(job_id: JobId) -> JSONResponse:
        """The generation report (404 until a run has finished)."""
        return await _stored(job_id, store.get_report, "report")

    @app.post("/v1/jobs/{job_id}/cancel", response_model=JobView, dependencies=auth, responses=_ERRORS)
    async def cancel_job(job_id: JobId) -> JobView:
        """Stop a queued or running job (what it paid for stays checkpointed)."""
        job = await _job(job_id)
        if job.finished:
            raise ApiError(409, "job already finished", [("path.job_id", f"job is {job.status}")])
        cancelled = await manager.cancel(job_id)
        return JobView.of(cancelled or job)

    # -- review queue --------------------------------------------------------------------------
    @app.get("/v1/reviews", response_model=ReviewList, dependencies=auth, responses=_ERRORS)
    async def list_reviews(
        status: Annotated[
            Literal["open", "approved", "edited", "regenerating", "regenerated"], Query()
        ] = "open",
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> ReviewList:
        """Flagged lessons, most uncertain gate verdicts first."""
        items = await store.list_reviews(status=status, limit=limit, tenant=current_caller().scope())
        return ReviewList(reviews=[ReviewView(**_fields(i)) for i in items])

    @app.post("/v1/reviews/{review_id}", response_model=ReviewView, dependencies=auth, responses=_ERRORS)
    async def act_on_review(
        review_id: ReviewId,
        action: ReviewAction,
        if_match: Annotated[str | None, Header(max_length=100)] = None,
    ) -> ReviewView:
        """approve / edit answer the item at once; regenerate answers 200 with the item
        "regenerating" and generates the lesson again in the background (poll the item: it ends
        "regenerated", or "open" again with the new reason when the new version is still flagged).

        Each action is atomic: of concurrent actions on one item one wins and the others get 409;
        concurrent edits of different lessons of one course all land. `If-Match` with the course's
        `ETag` (from GET .../course) makes the action conditional on the course not having changed
        since (412 when it has)."""
        item = await store.get_review(review_id)
        owner = await store.get_job(item.job_id) if item is not None else None
        if item is None or owner is None or not may_see(owner):
            raise ApiError(404, "no such review item", [("path.review_id", f"{review_id!r} not found")])
        if item.status != "open":
            raise ApiError(
                409, "review item already answered", [("path.review_id", f"item is {item.status}")]
            )
        resolution: dict[str, Any] = {**item.resolution, "action": action.action, "note": action.note}
        if action.action == "edit" and action.content is None:
            raise ApiError(422, "edit needs content", [("body.content", "required for action 'edit'")])
        new_status = {"approve": "approved", "edit": "edited", "regenerate": "regenerating"}[action.action]
        for _ in range(_COURSE_WRITE_ATTEMPTS):
            stored = await store.get_course_version(item.job_id)
            if if_match is not None and (stored is None or if_match.strip() != _etag(stored[1])):
                raise ApiError(
                    412,
                    "the course changed since it was read",
                    [("header.If-Match", f"the course is now {_etag(stored[1]) if stored else 'absent'}")],
                )
            course = stored[0] if stored is not None else None
            lesson = _find_lesson(course, item.target) if course is not None else None
            if action.action != "approve" and lesson is None:
                raise ApiError(409, "target is not a lesson", [("path.review_id", item.target)])
            write: tuple[str, dict[str, Any], str, int] | None = None
            if action.action == "regenerate":
                pass  # the course changes when the regeneration ends (jobs.revise_review)
            elif stored is not None and course is not None:
                if action.action == "edit" and lesson is not None and action.content is not None:
                    # The edit goes through the lesson's gates first (once, on the course as read).
                    if "gates" not in resolution:
                        resolution.update(await _gated_edit(engine, store, item, course, action))
                    lesson["content"] = action.content
                    resolution["content_chars"] = len(action.content)
                if not await unanswered_reviews(store, item.job_id, besides=item.id):
                    course["status"] = "approved"
                write = (item.job_id, course, str(course.get("status", "")), stored[1])
            try:
                await store.answer_review(
                    review_id, expect_status="open", status=new_status, resolution=resolution, course=write
                )
            except StoreConflict as conflict:
                if conflict.what == "course" and if_match is None:
                    continue  # another edit of this course landed first: apply this one to the new course
                if conflict.what == "course":
                    raise ApiError(
                        412, "the course changed since it was read", [("header.If-Match", str(conflict))]
                    ) from None
                current = await store.get_review(review_id)
                raise ApiError(
                    409,
                    "review item already answered",
                    [("path.review_id", f"item is {current.status if current else 'gone'}")],
                ) from None
            break
        else:
            raise ApiError(409, "the course kept changing", [("path.review_id", "try again")])
        if action.action == "regenerate":
            manager.schedule_revision(review_id)
        updated = await store.get_review(review_id)
        assert updated is not None
        return ReviewView(**_fields(updated))

    # -- operations ----------------------------------------------------------------------------
    app.include_router(export_router(settings, store, auth))  # GET /v1/jobs/{id}/export

    @app.get("/health", response_model=Health)
    async def health() -> Health:
        try:
            await store.schema_version()
            store_state = "ok"
        except Exception:
            store_state = "unavailable"
        return Health(
            status="ok" if store_state == "ok" else "degraded",
            store=store_state,
            jobs_running=manager.running,
            jobs_queued=manager.queued,
        )

    @app.get("/metrics", response_class=PlainTextResponse)
    async def prometheus() -> PlainTextResponse:
        """Prometheus text format; see docs/operations.md for each metric."""
        try:
            open_reviews = len(await store.list_reviews(status="open", limit=100_000))
        except Exception:
            open_reviews = 0
        model_ids = sorted(set(settings.routing.tiers.values()))
        metrics.refresh(
            queued=manager.queued,
            running=manager.running,
            reviews_open=open_reviews,
            breakers=lambda: [(m, engine.breakers.breaker(m).state) for m in model_ids],
            health=lambda: [
                (name, snap.failure_rate, snap.health == "down")
                for name, snap in engine.breakers.snapshots().items()
            ],
        )
        return PlainTextResponse(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    # -- the dashboard (/ui/): the same SSE and review handlers, behind a session cookie --------
    async def dashboard_caller() -> None:
        set_caller(Caller("", admin=True))  # only admin tokens sign in to it (tenants.py)

    app.include_router(
        ui_router(
            settings,
            store=store,
            manager=manager,
            engine=engine,
            tokens=directory.dashboard_tokens(settings),
            job_events=job_events,
            review_action=act_on_review,
            review_model=ReviewAction,
        ),
        dependencies=[Depends(dashboard_caller)],
    )

    app.openapi = lambda: app.openapi_schema or _set_schema(app)  # type: ignore[method-assign]
    return app


def _set_schema(app: FastAPI) -> dict[str, Any]:
    app.openapi_schema = _analysis_openapi(app)
    return app.openapi_schema


def _etag(version: int) -> str:
    return f'"course-v{version}"'


def _fields(item: Any) -> dict[str, Any]:
    return {k: getattr(item, k) for k in ReviewView.model_fields}


async def _gated_edit(
    engine: Engine, store: Store, item: ReviewItem, course: dict[str, Any], action: ReviewAction
) -> dict[str, Any]:
    """An edit's gate verdicts for the item's resolution; ApiError when a gate fails and the
    reviewer has not approved it anyway with a reason (`note`)."""
    assert action.content is not None
    verdicts = await edit_verdicts(engine, store, item, course, action.content)
    failed = [v for v in verdicts if not v["passed"]]
    if failed and not action.approve_anyway:
        problems = [(f"gates.{v['gate']}", "; ".join(v["reasons"])[:300] or "failed") for v in failed]
        raise ApiError(  # 422, not 409: the item is untouched; 409 means another action won
            422, "the edited lesson fails its gates (approve_anyway with a note to keep it)", problems
        )
    if failed and not action.note.strip():
        raise ApiError(
            422, "approving a failing edit needs a reason", [("body.note", "required with approve_anyway")]
        )
    extra: dict[str, Any] = {"gates": verdicts}
    if failed:
        extra["approved_anyway"] = {"reason": action.note, "failed_gates": [v["gate"] for v in failed]}
    return extra


def _find_lesson(course: dict[str, Any], lesson_id: str) -> dict[str, Any] | None:
    for section in course.get("sections", []):
        for lesson in section.get("lessons", []):
            if lesson.get("id") == lesson_id:
                return lesson  # type: ignore[no-any-return]
    return None


def _sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False, default=str)}\n\n"
