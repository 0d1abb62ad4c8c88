"""A worker process: polls a Temporal task queue, runs `CourseWorkflow`s and their activities.

The worker builds one `Engine` from its config: the model stacks (rate limits — shared through
Redis when `providers.X.redis_url` is set —, breakers, retries, structured output) and the
embedder live here, once per process, and every activity of every course uses them. The
workflow code itself holds no connection and no clock: it replays from history.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import gc
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from temporalio import activity
from temporalio.client import Client
from temporalio.runtime import Runtime, TelemetryConfig
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from ..cache import CacheBackend, RedisBackend, StoreBackend
from ..config import Settings
from ..domain import CallRecord
from ..domain.report import tokens_of
from ..engine import Engine
from ..errors import BadResponse, CircuitOpen, CourseforgeError, RunError, UserError
from ..ledger import price_of
from ..providers import ChatModel, ChatRequest, ChatResponse, Usage
from ..storage import Store, open_store, storage_url
from ..telemetry.metrics import CallMetrics
from .codec import decode_cached, decode_request, encode_cached, encode_error, encode_response, encode_vectors
from .workflow import (
    BATCH_CALL_ACTIVITY,
    CACHE_GET_ACTIVITY,
    CACHE_PUT_ACTIVITY,
    EMBED_ACTIVITY,
    MODEL_CALL_ACTIVITY,
    CourseWorkflow,
)

__all__ = [
    "WorkerActivities",
    "build_worker",
    "connect",
    "ensure_stable_hashing",
    "run_worker",
    "send_record",
    "start_metrics_server",
]

log = logging.getLogger("courseforge.worker")


#: The Temporal core runtime (a Rust thread pool) of this process's clients and workers: made
#: by the first `connect`, shut down by `_shut_down_runtime` at exit.
_runtime: Runtime | None = None


def _process_runtime() -> Runtime:
    global _runtime
    if _runtime is None:
        _runtime = Runtime(telemetry=TelemetryConfig())
        atexit.register(_shut_down_runtime)
    return _runtime


def _shut_down_runtime() -> None:
    """Drop the runtime and the clients on it (a client sits in a reference cycle, hence the
    collection) while the interpreter is still whole: the last reference stops the runtime's
    threads and waits for them with the GIL released, so a thread still finishing a call's
    callback (the event loop's `call_soon_threadsafe`) gets the GIL and ends.

    Temporal's default runtime is a module global that lives into the interpreter's teardown.
    A runtime thread that asks for the GIL once finalization has begun is ended by CPython,
    and releases a thread state it no longer holds on the way out: "Fatal Python error:
    PyGILState_Release: thread state ... must be current when releasing", SIGABRT after the
    command's work was done (temporalio/sdk-python#300, open). atexit functions run before
    the interpreter starts finalizing."""
    global _runtime
    _runtime = None
    gc.collect()


async def connect(address: str, namespace: str = "default") -> Client:
    """A Temporal client on this process's runtime (`_process_runtime`); an unreachable
    frontend is a `RunError` naming the address."""
    try:
        return await Client.connect(address, namespace=namespace, runtime=_process_runtime())
    except RuntimeError as exc:
        raise RunError(f"cannot reach Temporal at {address} (namespace {namespace}): {exc}") from exc


class WorkerActivities:
    """The activities, bound to one engine's model stacks and embedder; with `metrics`, each
    model call is counted as it returns (the course's ledger lives in the workflow, so the
    worker is where a call's latency is seen)."""

    def __init__(self, engine: Engine, metrics: CallMetrics | None = None) -> None:
        self.engine = engine
        self.metrics = metrics
        #: Model id -> the tier(s) it serves in this worker's config, for the metrics' labels.
        self._tiers: dict[str, str] = {}
        for tier, model_id in engine.settings.routing.tiers.items():
            self._tiers[model_id] = ",".join(x for x in (self._tiers.get(model_id), tier) if x)
        #: Each model's own stack, keyed by model id (the workflow walks the fallback chain).
        self.stacks: dict[str, ChatModel] = {
            model.model_id: model for chain in engine.stacks.chains().values() for model in chain
        }
        self._cache_backend: CacheBackend | None = None
        self._cache_lock = asyncio.Lock()
        self._store_lock = asyncio.Lock()
        self._store: Store | None = None

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
        stack = self._stack(model_id)
        return await self._send(model_id, request, lambda: stack.complete(request))

    @activity.defn(name=BATCH_CALL_ACTIVITY)
    async def batch_call(self, data: dict[str, Any]) -> dict[str, Any]:
        """One request of a batch-mode course: into this worker's provider batch for the model
        (shared with every batch call it holds in the round, recorded in its store so another
        worker resumes the batch instead of paying again), else the model's stack."""
        model_id, request = decode_request(data)
        stack = self._stack(model_id)
        batcher = self.engine.batcher(await self._shared_store())
        custom_id = str(data["custom_id"])
        return await self._send(
            model_id, request, lambda: batcher.complete(model_id, stack, request, custom_id)
        )

    def _stack(self, model_id: str) -> ChatModel:
        stack = self.stacks.get(model_id)
        if stack is None:
            raise encode_error(
                _config_error(
                    f"worker has no model {model_id!r} (workers and submitters must share a config)"
                )
            )
        return stack

    async def _send(
        self, model_id: str, request: ChatRequest, send: Callable[[], Awaitable[ChatResponse]]
    ) -> dict[str, Any]:
        started = time.perf_counter()
        with self.engine.event_scope() as events:
            work = asyncio.ensure_future(send())
            try:
                response = await self._with_heartbeat(work)
            except CourseforgeError as exc:
                self._observe(model_id, request, None, exc, started)
                raise encode_error(exc, retries=events.retry_count(), faults=events.fault_counts()) from None
        self._observe(model_id, request, response, None, started)
        return {
            "response": encode_response(response),
            "retries": events.retry_count(),
            "faults": events.fault_counts(),
        }

    def _observe(
        self,
        model_id: str,
        request: ChatRequest,
        response: ChatResponse | None,
        error: CourseforgeError | None,
        started: float,
    ) -> None:
        if self.metrics is not None:
            tier = self._tiers.get(model_id, "fallback")
            latency_ms = (time.perf_counter() - started) * 1000
            record = send_record(self.engine.settings, model_id, tier, request, response, error, latency_ms)
            self.metrics.observe_call(record)

    async def _shared_store(self) -> Store:
        """The store of this worker's config (`storage.url` / `$COURSEFORGE_STORAGE_URL`),
        opened on first use: response-cache entries and provider batches in flight."""
        async with self._store_lock:
            if self._store is None:
                settings = self.engine.settings
                store = open_store(storage_url(settings.storage.url), pool_size=settings.storage.pool_size)
                await store.init()
                self._store = store
            return self._store

    async def _cache(self) -> CacheBackend:
        """Where this worker keeps response-cache entries: `cache.redis_url`, else its store."""
        async with self._cache_lock:
            if self._cache_backend is None:
                settings = self.engine.settings
                if settings.cache.redis_url:
                    self._cache_backend = RedisBackend(settings.cache.redis_url)
                else:
                    self._cache_backend = StoreBackend(await self._shared_store())
            return self._cache_backend

    @activity.defn(name=CACHE_GET_ACTIVITY)
    async def cache_get(self, data: dict[str, Any]) -> dict[str, Any]:
        backend = await self._cache()
        found = await backend.get(str(data["namespace"]), str(data["key"]), now=float(data["now"]))
        return {"entry": encode_cached(found) if found is not None else None}

    @activity.defn(name=CACHE_PUT_ACTIVITY)
    async def cache_put(self, data: dict[str, Any]) -> dict[str, Any]:
        backend = await self._cache()
        await backend.put(decode_cached(data["entry"]), max_entries=int(data["max_entries"]))
        return {}

    async def aclose(self) -> None:
        if self._store is not None:
            await self._store.close()
        if isinstance(self._cache_backend, RedisBackend):
            await self._cache_backend.aclose()

    @activity.defn(name=EMBED_ACTIVITY)
    async def embed(self, data: dict[str, Any]) -> dict[str, Any]:
        texts = [str(t) for t in data["texts"]]
        work = asyncio.ensure_future(self.engine.embedder().embed(texts))
        vectors = await self._with_heartbeat(work)
        return {"vectors": encode_vectors(vectors)}


def send_record(
    settings: Settings,
    model_id: str,
    tier: str,
    request: ChatRequest,
    response: ChatResponse | None,
    error: BaseException | None,
    latency_ms: float,
) -> CallRecord:
    """What a worker knows of one model call, as a call record for its metrics (no ledger here:
    the workflow keeps the course's; attempt 0 because the worker does not know it)."""
    tags = request.tags
    base: dict[str, Any] = dict(
        phase=tags.get("phase", ""), task=tags.get("task", ""), model=model_id, tier=tier, attempt=0
    )
    model = settings.models[model_id]
    if response is not None:
        cost, source = price_of(model, response.usage)
        usage = response.usage
        outcome = "ok"
    elif isinstance(error, BadResponse) and isinstance(error.usage, Usage):
        usage = error.usage
        cost, source = price_of(model, usage)
        outcome = "rejected"
    else:
        outcome = "skipped" if isinstance(error, CircuitOpen) else "error"
        return CallRecord(**base, outcome=outcome, latency_ms=round(latency_ms, 1), cost_source="none")
    return CallRecord(
        **base,
        **tokens_of(usage, cache_writes=False),
        cost_usd=cost,
        latency_ms=round(latency_ms, 1),
        outcome=outcome,
        cost_source=source,
    )


def start_metrics_server(metrics: CallMetrics, host: str, port: int) -> tuple[int, Callable[[], None]]:
    """Serve `metrics` for Prometheus at http://host:port/metrics in a thread (port 0: any free
    one); returns the port listened on and the function that stops it."""
    from prometheus_client import start_http_server

    try:
        server, thread = start_http_server(port, addr=host, registry=metrics.registry)
    except OSError as exc:
        raise UserError(
            f"--metrics-port {port}: cannot listen on {host}:{port} ({exc.strerror or exc})"
        ) from exc

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return int(server.server_port), stop


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
    metrics: CallMetrics | None = None,
    activities: WorkerActivities | None = None,
) -> Worker:
    """`activities`: the worker's activities (default: new ones on `engine`; pass your own to
    close what they opened, `WorkerActivities.aclose`, after the worker stops)."""
    activities = activities or WorkerActivities(engine, metrics)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[CourseWorkflow],
        activities=[
            activities.model_call,
            activities.batch_call,
            activities.embed,
            activities.cache_get,
            activities.cache_put,
        ],
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
    metrics_port: int | None = None,
    metrics_host: str = "127.0.0.1",
) -> None:
    """Run a worker until cancelled (Ctrl-C / SIGTERM): finishes or hands back its tasks.
    With `metrics_port`, Prometheus metrics of its model calls are served there."""
    client = await connect(address, namespace)
    engine = Engine(settings, env=env)
    metrics = CallMetrics() if metrics_port is not None else None
    if metrics is not None:
        # Retries, faults, fallbacks and breaker changes of this worker's model stacks.
        engine.add_hook(metrics)
    # Load what workflow code would otherwise load lazily on first use (the safety gate's word
    # list and classifier, ~1.5 s, and the models' tokenizers: a workflow task blocking over 2 s
    # trips Temporal's deadlock detector, and in a workflow the gate runs inline), and the
    # embedding model the embed activities use, before taking work.
    await engine.warm()
    stop_metrics = None
    activities = WorkerActivities(engine, metrics)
    try:
        if metrics is not None and metrics_port is not None:
            port, stop_metrics = start_metrics_server(metrics, metrics_host, metrics_port)
            say(f"worker: metrics on http://{metrics_host}:{port}/metrics")
        worker = build_worker(
            client,
            engine,
            task_queue=task_queue,
            max_concurrent_activities=max_concurrent_activities,
            metrics=metrics,
            activities=activities,
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
        if stop_metrics is not None:
            stop_metrics()
        await activities.aclose()
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
