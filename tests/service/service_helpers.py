"""An app wired to scripted models and a temp SQLite store, driven by Starlette's TestClient."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from courseforge.config import Settings
from courseforge.engine import Engine
from courseforge.providers import ChatModel, ChatRequest
from courseforge.service import create_app
from courseforge.storage import Store, open_store
from courseforge.testing import CourseAuthor, ScriptedModel
from engine_helpers import example_data, make_engine, scripted_models

TOKEN = "tok-Service-7f3a9c"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@contextmanager
def service(
    settings: Settings,
    tmp_path: Path,
    *,
    models: Mapping[str, ChatModel] | None = None,
    engine: Engine | None = None,
    store: Store | None = None,
    tokens: tuple[str, ...] = (TOKEN,),
    freeze_gc: bool = False,
) -> Iterator[TestClient]:
    store = store or open_store(f"sqlite:///{tmp_path}/service.db")
    engine = engine or make_engine(settings, models or scripted_models(settings))
    app = create_app(settings, store=store, engine=engine, tokens=tokens, freeze_gc=freeze_gc)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def body(**overrides: Any) -> dict[str, Any]:
    return {**example_data(), **overrides}


def wait_for(
    client: TestClient,
    job_id: str,
    statuses: tuple[str, ...] = ("completed", "failed", "cancelled"),
    timeout_s: float = 180,  # a course on scripted models, on a loaded 2-core machine (30 s was passed)
    headers: Mapping[str, str] = AUTH,
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}", headers=dict(headers)).json()
        if job["status"] in statuses:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {job['status']}")
        time.sleep(0.05)


def lessons_hang(settings: Settings) -> dict[str, ScriptedModel]:
    """Scripted models whose metadata answers come at once and whose lesson calls hang (60 s)
    until cancelled: a job that stays running with requests in flight."""
    author = CourseAuthor()

    async def script(request: ChatRequest) -> str:
        if request.tags.get("phase") == "lessons":
            await asyncio.sleep(60)
        return author(request)

    return {m: ScriptedModel(script, model_id=m) for m in settings.models}
