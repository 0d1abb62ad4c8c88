"""/health and /metrics (Prometheus text format): no token needed."""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from ..config import Settings
from ..engine import Engine
from ..storage import Store
from .manager import JobManager
from .metrics import ServiceMetrics

__all__ = ["HEALTH_STORE_TIMEOUT_S", "Health", "add_ops_routes"]

#: Longest `/health` waits for the store's answer before it reports the store unavailable.
HEALTH_STORE_TIMEOUT_S = 2.0


class Health(BaseModel):
    status: str
    store: str
    jobs_running: int
    jobs_queued: int


def add_ops_routes(
    router: APIRouter,
    settings: Settings,
    store: Store,
    engine: Engine,
    manager: JobManager,
    metrics: ServiceMetrics,
) -> None:
    """/health and /metrics on `router` (the app's own)."""

    @router.get("/health", response_model=Health)
    async def health() -> Health:
        try:
            await asyncio.wait_for(store.ping(), HEALTH_STORE_TIMEOUT_S)
            store_state = "ok"
        except Exception:  # a TimeoutError too: a store this slow is reported, not waited for
            store_state = "unavailable"
        return Health(
            status="ok" if store_state == "ok" else "degraded",
            store=store_state,
            jobs_running=manager.running,
            jobs_queued=manager.queued,
        )

    #: The open reviews last counted: a scrape whose count the store does not give within
    #: HEALTH_STORE_TIMEOUT_S reports it (the store's reads wait out a busy pool for minutes).
    last_open_reviews = [0]

    @router.get("/metrics", response_class=PlainTextResponse)
    async def prometheus() -> PlainTextResponse:
        """Prometheus text format; see docs/operations.md for each metric."""
        with contextlib.suppress(Exception):
            reviews = await asyncio.wait_for(
                store.list_reviews(status="open", limit=100_000), HEALTH_STORE_TIMEOUT_S
            )
            last_open_reviews[0] = len(reviews)
        open_reviews = last_open_reviews[0]
        model_ids = sorted(set(settings.routing.tiers.values()))
        metrics.refresh(
            queued=manager.queued,
            running=manager.running,
            limit=manager.slots.limit,
            reviews_open=open_reviews,
            breakers=lambda: [(m, engine.breakers.breaker(m).state) for m in model_ids],
            health=lambda: [
                (name, snap.failure_rate, snap.health == "down")
                for name, snap in engine.breakers.snapshots().items()
            ],
        )
        return PlainTextResponse(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
