"""`courseforge worker`: a Temporal worker of the distributed engine (registers on `cli.app`)."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from .cli import ConfigOpt, _fail_user, app, err
from .config import load_config
from .errors import UserError

__all__ = ["worker"]


@app.command()
def worker(
    temporal: Annotated[str, typer.Option("--temporal", help="Temporal frontend HOST:PORT.")],
    task_queue: Annotated[
        str | None, typer.Option("--task-queue", help="Task queue (default: service.temporal_task_queue).")
    ] = None,
    namespace: Annotated[
        str | None, typer.Option("--namespace", help="Namespace (default: service.temporal_namespace).")
    ] = None,
    max_activities: Annotated[
        int, typer.Option("--max-activities", min=1, help="Activities (model calls) run at once.")
    ] = 64,
    config: ConfigOpt = None,
) -> None:
    """Run a Temporal worker: courses submitted with `generate --temporal` or by the service."""
    from .distributed.worker import ensure_stable_hashing, run_worker

    # Workflow replay must see the same iteration order in every worker process.
    ensure_stable_hashing()
    try:
        loaded = load_config(config)
    except UserError as exc:
        raise _fail_user(exc) from exc
    settings = loaded.settings
    err.print(f"config: {loaded.reason}")
    try:
        asyncio.run(
            run_worker(
                settings,
                address=temporal,
                namespace=namespace or settings.service.temporal_namespace,
                task_queue=task_queue or settings.service.temporal_task_queue,
                max_concurrent_activities=max_activities,
                say=err.print,
            )
        )
    except UserError as exc:
        raise _fail_user(exc) from exc
    except KeyboardInterrupt:
        err.print("worker stopped")
