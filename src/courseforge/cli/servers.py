"""`courseforge serve` (the HTTP service), `courseforge worker` (a Temporal worker of the
distributed engine) and `courseforge sim serve` (the provider simulator)."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from ..config import load_config
from ..errors import UserError
from ._common import ConfigOpt, app, err, fail_user, sim_app

__all__ = ["serve", "sim_serve", "worker"]


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
    config: ConfigOpt = None,
    log_level: Annotated[str, typer.Option(help="debug | info | warning | error")] = "info",
) -> None:
    """Run the HTTP service: jobs API, SSE progress, review queue, /metrics (needs $COURSEFORGE_API_TOKENS)."""
    from ..service.uvicorn_server import serve_forever

    try:
        loaded = load_config(config)
        err.print(f"config: {loaded.reason}")
        serve_forever(loaded.settings, host=host, port=port, log_level=log_level)
    except UserError as exc:
        raise fail_user(exc) from exc


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
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            min=0,
            max=65535,
            help="Serve Prometheus metrics of this worker's model calls on this port (default: none).",
        ),
    ] = None,
    metrics_host: Annotated[
        str, typer.Option("--metrics-host", help="Address the metrics port listens on.")
    ] = "127.0.0.1",
) -> None:
    """Run a Temporal worker: courses submitted with `generate --temporal` or by the service."""
    from ..distributed.worker import ensure_stable_hashing, run_worker

    # Workflow replay must see the same iteration order in every worker process.
    ensure_stable_hashing()
    try:
        loaded = load_config(config)
    except UserError as exc:
        raise fail_user(exc) from exc
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
                metrics_port=metrics_port,
                metrics_host=metrics_host,
            )
        )
    except UserError as exc:
        raise fail_user(exc) from exc
    except KeyboardInterrupt:
        err.print("worker stopped")


@sim_app.command("serve")
def sim_serve(
    port: Annotated[int, typer.Option("--port", "-p", help="Port on 127.0.0.1 (0: any free port).")] = 8089,
    profile: Annotated[
        str, typer.Option("--profile", help="ideal, realistic, chaos, reasoning, or a profile YAML file.")
    ] = "realistic",
    seed: Annotated[int, typer.Option("--seed", help="Fault and latency draws follow this seed.")] = 0,
    time_scale: Annotated[
        float, typer.Option("--time-scale", help="Multiply simulated latency (0.01: 100x faster).")
    ] = 1.0,
) -> None:
    """Serve an OpenAI-compatible simulator with latency profiles and injected faults."""
    from ..sim.foreground import serve

    try:
        asyncio.run(serve(profile, port=port, seed=seed, time_scale=time_scale, say=err.print))
    except UserError as exc:
        raise fail_user(exc) from exc
    except KeyboardInterrupt:
        err.print("simulator stopped")
