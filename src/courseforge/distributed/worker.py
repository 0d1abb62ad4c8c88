"""A worker process: polls a Temporal task queue, runs `CourseWorkflow`s and their activities.

The worker builds one `Engine` from its config: the model stacks (rate limits — shared through
Redis when `providers.X.redis_url` is set —, breakers, retries, structured output) and the
embedder live here, once per process, and every activity of every course uses them. The
workflow code itself holds no connection and no clock: it replays from history.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from temporalio import activity
from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from ..config import Settings
from ..engine import Engine
from ..errors import CourseforgeError, RunError
from ..providers import ChatModel
from .codec import decode_request, encode_error, encode_response, encode_vectors
from .workflow import EMBED_ACTIVITY, MODEL_CALL_ACTIVITY, CourseWorkflow

__all__ = ["WorkerActivities", "build_worker", "connect", "ensure_stable_hashing", "run_worker"]

log = logging.getLogger("courseforge.worker")


async def connect(address: str, namespace: str = "default") -> Client:
    """A Temporal client; an unreachable frontend is a `RunError` naming the address."""
    try:
        return await Client.connect(address, namespace=namespace)
    except RuntimeError as exc:
        raise RunError(f"cannot reach Temporal at {address} (namespace {namespace}): {exc}") from exc


class WorkerActivities:
    """The activities, bound to one engine's model stacks and embedder."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        #: Each model's own stack, keyed by model id (the workflow walks the fallback chain).
        self.stacks: dict[str, ChatModel] = {
            model.model_id: model for chain in engine.stacks.chains().values() for model in chain
        }

    async def _with_heartbeat(self, work: asyncio.Future[Any]) -> Any:
        timeout = activity.info().heartbeat_timeout
        beat_s = max(timeout.total_seconds() / 4, 0.2) if timeout else 5.0
        try:
            while True:
                done, _ = await asyncio.wait({work}, timeout=beat_s)
                if done:
                    return work.result()
                activity.heartbeat()
        finally:
            if not work.done():
                work.cancel()
                with contextlib.suppress(BaseException):
                    await work

    @activity.defn(name=MODEL_CALL_ACTIVITY)
    async def model_call(self, data: dict[str, Any]) -> dict[str, Any]:
        """One request to one model's stack: text, usage and latency back (no ledger here)."""
        model_id, request = decode_request(data)
        stack = self.stacks.get(model_id)
        if stack is None:
            raise encode_error(
                _config_error(
                    f"worker has no model {model_id!r} (workers and submitters must share a config)"
                )
            )
        with self.engine.event_scope() as events:
            work = asyncio.ensure_future(stack.complete(request))
            try:
                response = await self._with_heartbeat(work)
            except CourseforgeError as exc:
                raise encode_error(exc, retries=events.retry_count(), faults=events.fault_counts()) from None
        return {
            "response": encode_response(response),
            "retries": events.retry_count(),
            "faults": events.fault_counts(),
        }

    @activity.defn(name=EMBED_ACTIVITY)
    async def embed(self, data: dict[str, Any]) -> dict[str, Any]:
        texts = [str(t) for t in data["texts"]]
        work = asyncio.ensure_future(self.engine.embedder().embed(texts))
        vectors = await self._with_heartbeat(work)
        return {"vectors": encode_vectors(vectors)}


def _config_error(reason: str) -> CourseforgeError:
    from ..errors import ConfigError

    return ConfigError("model missing on worker", [("routing.tiers", reason)])


def sandbox_runner() -> SandboxedWorkflowRunner:
    """Workflow sandbox with every module passed through: our pipeline code is deterministic
    by construction (the clock and every effect come through `Effects`), and re-importing
    pydantic models per workflow run would cost far more than it protects."""
    return SandboxedWorkflowRunner(restrictions=SandboxRestrictions.default.with_passthrough_all_modules())


def build_worker(
    client: Client,
    engine: Engine,
    *,
    task_queue: str,
    max_concurrent_activities: int = 64,
    max_concurrent_workflow_tasks: int = 8,
) -> Worker:
    activities = WorkerActivities(engine)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[CourseWorkflow],
        activities=[activities.model_call, activities.embed],
        workflow_runner=sandbox_runner(),
        max_concurrent_activities=max_concurrent_activities,
        max_concurrent_workflow_tasks=max_concurrent_workflow_tasks,
        workflow_task_executor=ThreadPoolExecutor(max(max_concurrent_workflow_tasks, 2)),
        graceful_shutdown_timeout=timedelta(seconds=10),
    )


async def run_worker(
    settings: Settings,
    *,
    address: str,
    namespace: str = "default",
    task_queue: str = "courseforge",
    max_concurrent_activities: int = 64,
    say: Callable[[str], object] = print,
    env: Mapping[str, str] | None = None,
) -> None:
    """Run a worker until cancelled (Ctrl-C / SIGTERM): finishes or hands back its tasks."""
    client = await connect(address, namespace)
    engine = Engine(settings, env=env)
    # Load what workflow code would otherwise load lazily on first use (the safety gate's word
    # list and classifier, ~1.5 s: a workflow task blocking over 2 s trips Temporal's deadlock
    # detector, and in a workflow the gate runs inline), and the embedding model the embed
    # activities use, before taking work.
    await engine.warm()
    try:
        worker = build_worker(
            client, engine, task_queue=task_queue, max_concurrent_activities=max_concurrent_activities
        )
        shared = sorted(n for n, p in settings.providers.items() if p.redis_url)
        say(
            f"worker: {address} namespace {namespace} task queue {task_queue!r}, pid {os.getpid()}; "
            f"rate limits {'shared via Redis for ' + ', '.join(shared) if shared else 'per process'}"
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        # Leaving the block shuts the worker down gracefully: no new tasks, running activities
        # get `graceful_shutdown_timeout` to finish, the rest go to other workers.
        async with worker:
            await stop.wait()
        say("worker stopped")
    finally:
        await engine.aclose()


def ensure_stable_hashing(argv: list[str] | None = None) -> None:
    """Re-exec this process with PYTHONHASHSEED=0 unless it already runs with a fixed seed.

    Workflow code is replayed by whichever worker picks a course up next; any order that
    comes from iterating a set of strings must be the same in every worker process."""
    if os.environ.get("PYTHONHASHSEED") not in (None, "", "random"):
        return
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    args = list(argv if argv is not None else sys.orig_argv)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *args[1:]], env)
