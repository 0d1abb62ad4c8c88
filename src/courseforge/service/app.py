"""The HTTP API (FastAPI): jobs, their events, courses and reports, the review queue, metrics.

Every /v1 endpoint needs `Authorization: Bearer <token>` with a token from
`$COURSEFORGE_API_TOKENS` (comma-separated) or a tenant's variable (`service.tenants`, see
`tenants.py`: each caller sees only its tenant's jobs and reviews); /health and /metrics do not. Bad input is a 4xx
whose body names the field: `{"error": {"message", "problems": [{"path", "reason"}]}}`.
Anything unexpected is logged (type only) and answered 503, never a 500 with a traceback.

`create_app` only wires: the routes live one module per resource (`api_jobs`, `api_reviews`,
`exports`, `api_ops`, the dashboard's `ui`), each parsing its request, calling one service and
mapping the service's domain errors to a status (`api_errors`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from fastapi import Depends, FastAPI

from ..config import Settings
from ..domain import AnalysisResult
from ..engine import Engine
from ..jobs.review_service import ReviewService
from ..storage import Store
from .api_auth import bearer_auth
from .api_errors import ApiError, install_error_handlers
from .api_jobs import add_job_routes
from .api_ops import add_ops_routes
from .api_plans import add_plan_routes
from .api_reviews import add_review_routes
from .body_limit import BodySizeLimit
from .docs import mount_docs
from .exports import export_router
from .manager import JobManager
from .metrics import ServiceMetrics, watch_loop_lag
from .tenants import Caller, TenantDirectory, TenantLimits, set_caller
from .ui import ui_router

__all__ = ["ApiError", "create_app"]


async def _freeze_after_first_job(manager: JobManager) -> None:
    """Once the first job has ended, what is alive is mostly what the process keeps for good:
    modules (many imported at first use), the app, models, caches. `gc.freeze` takes it out
    of the collector's sight, so that a full collection walks only what courses made since.
    Each full collection pauses the event loop; with 117,000 objects left in sight at the
    600-course run's midpoint, most of them modules imported at first use, they took ≈ 0.1 s
    and were most of the loop's lag over 0.1 s (docs/scaling.md). Objects freed by their
    reference counts are freed as before; only cycles among the frozen (those of the courses in
    flight at that moment) are never collected. A `courseforge serve` process does this, not
    an app made in a test."""
    await manager.first_finished.wait()
    gc.collect()
    gc.freeze()


def create_app(
    settings: Settings,
    *,
    store: Store,
    engine: Engine,
    tokens: Sequence[str] | Mapping[str, str],
    resume: bool = True,
    close_on_shutdown: bool = False,
    freeze_gc: bool = False,
) -> FastAPI:
    """The ASGI app. `tokens`: accepted bearer tokens, as token -> tenant (`tenants.tenant_tokens`)
    or a list (all of the default tenant ""); empty: every /v1 request is refused."""
    directory = TenantDirectory(
        tokens if isinstance(tokens, Mapping) else dict.fromkeys(tokens, ""), settings
    )
    metrics = ServiceMetrics()
    metrics.watch_store(store.pool_stats)
    manager = JobManager(
        settings,
        store,
        engine,
        metrics,
        max_concurrent=settings.service.max_concurrent_jobs,
        lag_target_s=settings.service.loop_lag_target_s,
    )
    # A request waits through a busy store for seconds, then gets 503 with Retry-After
    # (`api_errors`); the jobs' own reads and writes (the manager's store) wait for minutes.
    serving = store.serving(settings.service.request_store_wait_s)
    reviews = ReviewService(settings, serving, engine, schedule_revision=manager.schedule_revision)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await store.init()
        # Every call of this app's jobs counted as it is recorded, every breaker change.
        unhook = engine.add_hook(metrics)
        # The gates' models load while the service starts taking requests, not in its first job.
        warming = asyncio.create_task(engine.warm())

        def observe_lag(lag_s: float) -> None:
            metrics.loop_lag.observe(lag_s)
            manager.observe_lag(lag_s)

        lag = asyncio.create_task(watch_loop_lag(observe_lag))
        freezing = [asyncio.create_task(_freeze_after_first_job(manager))] if freeze_gc else []
        await manager.start(adopt=resume)
        try:
            yield
        finally:
            unhook()
            for task in (warming, lag, *freezing):
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
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
    install_error_handlers(app)

    auth = [Depends(bearer_auth(directory))]
    add_job_routes(app.router, settings, serving, manager, TenantLimits(settings, serving), auth)
    add_plan_routes(app.router, settings, serving, manager, auth)
    add_review_routes(app.router, reviews, auth)
    app.include_router(export_router(settings, serving, auth))  # GET /v1/jobs/{id}/export
    add_ops_routes(app.router, settings, store, engine, manager, metrics)

    # -- the dashboard (/ui/): the same services, behind a session cookie ------------------------
    async def dashboard_caller() -> None:
        set_caller(Caller("", admin=True))  # only admin tokens sign in to it (tenants.py)

    app.include_router(
        ui_router(
            settings,
            store=serving,
            manager=manager,
            reviews=reviews,
            tokens=directory.dashboard_tokens(settings),
        ),
        dependencies=[Depends(dashboard_caller)],
    )

    app.openapi = lambda: app.openapi_schema or _set_schema(app)  # type: ignore[method-assign]
    return app


def _set_schema(app: FastAPI) -> dict[str, Any]:
    app.openapi_schema = _analysis_openapi(app)
    return app.openapi_schema


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
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/AnalysisResult"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["analysis"],
                    "additionalProperties": False,  # any other part is refused (422)
                    "properties": {
                        "analysis": {
                            "type": "string",
                            "format": "binary",
                            "description": "the analysis_result JSON",
                        },
                        "question_bank": {
                            "type": "string",
                            "format": "binary",
                            "description": "a GIFT, Moodle XML or QTI 2.1 question bank (docs/authoring.md)",
                        },
                    },
                }
            },
        },
    }
    doc.setdefault("components", {})["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    for path, operations in doc["paths"].items():
        if path.startswith("/v1/"):  # every /v1 operation needs the bearer token
            for operation in operations.values():
                operation["security"] = [{"bearer": []}]
    return doc
