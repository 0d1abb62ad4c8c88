"""The course as a Temporal workflow: the same `engine.run_course`, on a runtime whose model
calls and embedding batches are activities.

Workflow code (deterministic; replayed from history after a worker dies):
- `temporal_runtime` is the in-process runtime with three swaps: each model of a tier's chain is
  an `ActivityModel` (its `complete` runs the `courseforge.model_call` activity on a worker's
  model stack), the clock is the workflow's, and blocking gate work runs inline (a workflow's
  loop has no thread executor). So the ledger, its per-try reservations and records, the
  fallback chain and the cascade run here, in workflow state, exactly as in-process; only the
  provider stack (rate limits, breaker, retries, structured output) runs in the activity.
- Embeddings go through `courseforge.embed` activities, each text once per course.
- The response cache (when the submitter's `cache.mode` is on) is the in-process one, its
  lookups and writes `courseforge.cache_get`/`cache_put` activities on a worker, which keeps
  the entries where its own config says (the store, or `cache.redis_url`): a course on the
  fleet is answered by what any earlier job of its namespace paid for, and keeps its answers
  for the next. Exact matches only (the semantic index stays in-process).
- Batch mode (input "batch"): a primary model's call with a known batch price is a
  `courseforge.batch_call` activity; the worker's own `engine.batching.Batcher` puts it in one
  provider batch with every other batch call that worker holds in the same round (any course),
  records the batch in the worker's store and polls it, heart-beating; a request the batch
  fails takes the worker's normal path inside the same activity. A worker that dies while its
  batch runs hands the activity to another, which finds the batch in the store (a shared
  PostgreSQL) and polls it instead of paying again.
- Section fan-out is the pipeline's own `asyncio.gather`, on Temporal's deterministic loop.

A finished activity's result is in the history, so a new worker replays it and never sends it
again; only activities in flight when a worker died run again (after their heartbeat timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, TemporalError, TimeoutError

with workflow.unsafe.imports_passed_through():
    from ..cache import ResponseCache
    from ..config import Settings
    from ..domain import CoursePlan, Exercise
    from ..engine import Runtime, model_chains, run_course
    from ..errors import CourseforgeError, ProviderError, ProviderTimeout
    from ..pipeline import ProgressEvent, validate_analysis
    from ..pipeline.prompts import TEMPLATES_VERSION
    from ..pipeline.state import PlanControl, track_progress
    from ..providers import ChatModel, ChatRequest, ChatResponse, Embedder, Vector
    from ..storage import CachedResponse
    from .codec import (
        decode_cached,
        decode_error,
        decode_response,
        decode_vectors,
        encode_cached,
        encode_request,
        error_fields,
    )

__all__ = [
    "BATCH_CALL_ACTIVITY",
    "CACHE_GET_ACTIVITY",
    "CACHE_PUT_ACTIVITY",
    "EMBED_ACTIVITY",
    "MODEL_CALL_ACTIVITY",
    "PLAN_APPROVE_SIGNAL",
    "PLAN_EDIT_SIGNAL",
    "PLAN_QUERY",
    "WORKFLOW_NAME",
    "ActivityOptions",
    "CourseWorkflow",
    "temporal_runtime",
]

WORKFLOW_NAME = "courseforge.course"
MODEL_CALL_ACTIVITY = "courseforge.model_call"
EMBED_ACTIVITY = "courseforge.embed"
CACHE_GET_ACTIVITY = "courseforge.cache_get"
CACHE_PUT_ACTIVITY = "courseforge.cache_put"
BATCH_CALL_ACTIVITY = "courseforge.batch_call"
#: The plan checkpoint: the query showing the plan, the signals bringing an edit and the approval.
PLAN_QUERY, PLAN_EDIT_SIGNAL, PLAN_APPROVE_SIGNAL = "plan", "edit_plan", "approve_plan"
#: Texts per embedding activity (keeps each payload well under Temporal's 2 MB limit).
EMBED_BATCH = 128
#: Progress events kept for the `events` query.
MAX_EVENTS = 5000


@dataclass(frozen=True, slots=True)
class ActivityOptions:
    """How the workflow runs its activities (part of the workflow input, so pinned per course).

    `heartbeat_timeout_s`: a worker that stops heart-beating this long is presumed dead and its
    in-flight activity goes to another worker. `max_attempts`: Temporal-level attempts of one
    activity (lost worker, unexpected error); our provider errors are never retried by
    Temporal — the model stack retried them already — they go back to the fallback chain and
    the cascade. `start_to_close_s`: the outer limit of one activity (the stack's own
    per-request timeouts and retries normally end it much sooner)."""

    heartbeat_timeout_s: float = 20.0
    max_attempts: int = 3
    start_to_close_s: float = 1800.0
    initial_retry_s: float = 1.0
    max_retry_s: float = 30.0
    #: The outer limit of one batch-mode call: a provider batch answers within its completion
    #: window (24 h by default), so a day and an hour.
    batch_start_to_close_s: float = 90_000.0

    @classmethod
    def from_data(cls, data: dict[str, Any] | None) -> ActivityOptions:
        known = {k: v for k, v in (data or {}).items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def as_data(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def kwargs(self, *, batch: bool = False) -> dict[str, Any]:
        limit_s = self.batch_start_to_close_s if batch else self.start_to_close_s
        return {
            "start_to_close_timeout": timedelta(seconds=limit_s),
            "heartbeat_timeout": timedelta(seconds=self.heartbeat_timeout_s),
            "retry_policy": RetryPolicy(
                initial_interval=timedelta(seconds=self.initial_retry_s),
                backoff_coefficient=2.0,
                maximum_interval=timedelta(seconds=self.max_retry_s),
                maximum_attempts=self.max_attempts,
            ),
        }


class _Counters:
    """What the activities report back: transport retries and fault classes per course."""

    def __init__(self) -> None:
        self.retries = 0
        self.faults: Counter[str] = Counter()
        self.model_calls = 0
        self.embed_batches = 0

    def add(self, data: dict[str, Any]) -> None:
        self.retries += int(data.get("retries", 0) or 0)
        self.faults.update({str(k): int(v) for k, v in (data.get("faults") or {}).items()})

    def retry_count(self) -> int:
        return self.retries

    def fault_counts(self) -> dict[str, int]:
        return dict(sorted(self.faults.items()))


async def _call_activity(
    name: str,
    model_id: str,
    request: ChatRequest,
    options: ActivityOptions,
    counters: _Counters,
    **extra: Any,
) -> ChatResponse:
    counters.model_calls += 1
    tags = request.tags
    summary = "/".join(t for t in (tags.get("phase", ""), tags.get("task", ""), model_id) if t)
    try:
        result: dict[str, Any] = await workflow.execute_activity(
            name,
            {**encode_request(model_id, request), **extra},
            summary=summary[:200] or None,
            **options.kwargs(batch=name == BATCH_CALL_ACTIVITY),
        )
    except ActivityError as exc:
        raise _provider_error(exc, model_id) from None
    counters.add(result)
    return decode_response(result["response"])


class ActivityModel(ChatModel):
    """One model of a fallback chain, reached through the `model_call` activity."""

    def __init__(self, model_id: str, options: ActivityOptions, counters: _Counters) -> None:
        self.model_id = model_id
        self._options = options
        self._counters = counters

    async def complete(self, request: ChatRequest) -> ChatResponse:
        return await _call_activity(
            MODEL_CALL_ACTIVITY, self.model_id, request, self._options, self._counters
        )


class ActivityBatcher:
    """Batch mode in a workflow (`engine.batching.BatchRoute`): the call is a `batch_call`
    activity, batched, polled and (if the batch fails it) sent the normal way by the worker."""

    def __init__(self, options: ActivityOptions, counters: _Counters) -> None:
        self._options = options
        self._counters = counters

    async def complete(
        self, model_id: str, fallback: ChatModel, request: ChatRequest, custom_id: str
    ) -> ChatResponse:
        del fallback  # the worker's own stack for `model_id` is the normal path
        return await _call_activity(
            BATCH_CALL_ACTIVITY, model_id, request, self._options, self._counters, custom_id=custom_id
        )


def _provider_error(exc: ActivityError, model_id: str) -> CourseforgeError:
    cause = exc.cause
    fields = error_fields(cause) if cause is not None else None
    if fields is not None:
        error = decode_error(fields)
        return error
    if isinstance(cause, TimeoutError):
        return ProviderTimeout(
            f"activity timed out ({cause.type.name if cause.type else 'timeout'})", model=model_id
        )
    message = f"activity failed: {cause or exc}"[:500]
    error = ProviderError(message, model=model_id)
    error.retryable = False
    return error


class ActivityEmbedder(Embedder):
    """Embeddings through `embed` activities; each distinct text is embedded once per course."""

    name = "activity"

    def __init__(self, options: ActivityOptions, counters: _Counters) -> None:
        self._options = options
        self._counters = counters
        self._cache: dict[str, list[float]] = {}

    async def embed(self, texts: Sequence[str]) -> list[Vector]:
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        for start in range(0, len(missing), EMBED_BATCH):
            batch = missing[start : start + EMBED_BATCH]
            self._counters.embed_batches += 1
            try:
                result: dict[str, Any] = await workflow.execute_activity(
                    EMBED_ACTIVITY, {"texts": batch}, summary=f"{len(batch)} texts", **self._options.kwargs()
                )
            except ActivityError as exc:
                raise _provider_error(exc, "embedder") from None
            for text, vector in zip(batch, decode_vectors(result["vectors"]), strict=True):
                self._cache[text] = vector
        return [self._cache[t] for t in texts]


class ActivityCacheBackend:
    """The response cache's backend in a workflow (`cache.CacheBackend`): each read and write
    an activity on a worker. A failed read is a miss, a failed write is dropped (as the
    in-process cache treats its backend's errors)."""

    def __init__(self, options: ActivityOptions) -> None:
        self._options = options

    async def get(self, namespace: str, key: str, *, now: float) -> CachedResponse | None:
        result: dict[str, Any] = await workflow.execute_activity(
            CACHE_GET_ACTIVITY, {"namespace": namespace, "key": key, "now": now}, **self._options.kwargs()
        )
        found = result.get("entry")
        return decode_cached(found) if found else None

    async def put(self, entry: CachedResponse, *, max_entries: int) -> None:
        await workflow.execute_activity(
            CACHE_PUT_ACTIVITY,
            {"entry": encode_cached(entry), "max_entries": max_entries},
            **self._options.kwargs(),
        )


def activity_cache(
    settings: Settings, options: ActivityOptions, namespace: str | None
) -> ResponseCache | None:
    """The course's response cache on activities; None when the submitter's cache is off."""
    if settings.cache.mode == "off" or not namespace:
        return None
    return ResponseCache(
        ActivityCacheBackend(options),
        namespace=namespace,
        templates=TEMPLATES_VERSION,
        ttl_s=settings.cache.ttl_s,
        max_entries=settings.cache.max_entries,
        clock=lambda: workflow.now().timestamp(),
    )


class _WorkflowClock:
    """The resilience `Clock` on workflow time (a sleep is a durable timer)."""

    def monotonic(self) -> float:
        return workflow.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(seconds, 0.0))


async def _inline(fn: Any, *args: Any) -> Any:
    return fn(*args)


def temporal_runtime(settings: Settings, options: ActivityOptions, counters: _Counters) -> Runtime:
    """The runtime of a course inside the workflow (see the module docstring)."""
    activity_models: dict[str, ChatModel] = {}

    def one(model_id: str) -> ChatModel:
        if model_id not in activity_models:
            activity_models[model_id] = ActivityModel(model_id, options, counters)
        return activity_models[model_id]

    return Runtime(
        chains=model_chains(settings, one),  # the in-process runner's chains, of activities
        embedder=ActivityEmbedder(options, counters),
        clock=_WorkflowClock(),
        open_wait_s=settings.breakers.cooldown_s,
        blocking=_inline,
        events=lambda: contextlib.nullcontext(counters),
        hedge=False,
    )


@workflow.defn(name=WORKFLOW_NAME, failure_exception_types=[CourseforgeError])
class CourseWorkflow:
    """Input: {"analysis", "course_id", "settings" (pinned, see `codec.pinned_settings`),
    "options" (`ActivityOptions`), "cache_namespace" (the response cache's, or absent), optional
    "batch" (batch mode: provider batch APIs through `batch_call` activities), "review_plan" (wait for the author after phase 2), "approved_plan" (a `CoursePlan` to go on
    with) and "bank" (vetted questions, `Exercise` JSON)}. Result: {"course": course JSON or
    None, "report": report JSON}. Queries: `progress` (per-phase progress), `events` (progress
    events from an index) and `plan` (the plan record while the course waits for its author,
    docs/authoring.md). Signals: `edit_plan` (a plan record the client has gated, shown from
    then on) and `approve_plan` ({"plan": a `CoursePlan`, or none for the shown one}: re-gated
    here, the course goes on or waits again with the reasons)."""

    def __init__(self) -> None:
        self._events: list[dict[str, Any]] = []
        self._dropped = 0
        self._progress: dict[str, Any] = {"phases": {}, "message": ""}
        self._input: dict[str, Any] = {}
        self._plan: dict[str, Any] | None = None
        self._approved: CoursePlan | None = None

    def _on_progress(self, event: ProgressEvent) -> None:
        self._events.append(event.as_data())
        if len(self._events) > MAX_EVENTS:
            self._events.pop(0)
            self._dropped += 1
        track_progress(self._progress, event)

    @workflow.query
    def progress(self) -> dict[str, Any]:
        return {"phases": self._progress["phases"], "message": self._progress["message"]}

    @workflow.query
    def events(self, since: int) -> dict[str, Any]:
        """Progress events numbered from 0; those from `since` on (older ones may be dropped)."""
        start = max(since - self._dropped, 0)
        return {"events": self._events[start:], "next": self._dropped + len(self._events)}

    @workflow.query(name=PLAN_QUERY)
    def plan(self) -> dict[str, Any]:
        """{"record": the plan record (None before phase 2 or without review; its `state` is
        "review" while the course waits), "analysis", "course_id"}: what a client needs to gate
        an edit (`jobs.gate_edit`)."""
        return {
            "record": self._plan,
            "analysis": self._input.get("analysis"),
            "course_id": self._input.get("course_id"),
        }

    @workflow.signal(name=PLAN_EDIT_SIGNAL)
    def edit_plan(self, record: dict[str, Any]) -> None:
        if self._plan is not None and self._plan.get("state") == "review":
            self._plan = {**record, "state": "review"}

    @workflow.signal(name=PLAN_APPROVE_SIGNAL)
    def approve_plan(self, data: dict[str, Any]) -> None:
        if self._plan is None or self._plan.get("state") != "review":
            return  # nothing waits (an approval repeated, or sent too early)
        chosen = (data or {}).get("plan") or self._plan["plan"]
        self._approved = CoursePlan.model_validate(chosen)
        self._plan = {**self._plan, "plan": self._approved.model_dump(mode="json"), "state": "approved"}

    async def _wait_for_plan(self, record: dict[str, Any]) -> CoursePlan:
        self._approved = None
        self._plan = record
        await workflow.wait_condition(lambda: self._approved is not None)
        assert self._approved is not None
        return self._approved

    @workflow.run
    async def run(self, data: dict[str, Any]) -> dict[str, Any]:
        try:
            return await self._run(data)
        except (CourseforgeError, TemporalError, asyncio.CancelledError):
            raise
        except Exception as exc:  # a bug: fail the course (as in-process) rather than retry forever
            workflow.logger.exception("course workflow failed")
            raise ApplicationError(f"{type(exc).__name__}: {exc}"[:2000], type=type(exc).__name__) from exc

    def _plan_control(self, data: dict[str, Any]) -> PlanControl | None:
        approved = data.get("approved_plan")
        if not data.get("review_plan") and not approved:
            return None
        return PlanControl(
            review=True,
            approved=CoursePlan.model_validate(approved) if approved else None,
            wait=self._wait_for_plan,
        )

    async def _run(self, data: dict[str, Any]) -> dict[str, Any]:
        self._input = data
        settings = Settings.model_validate(data["settings"])
        analysis = validate_analysis(data["analysis"])
        counters = _Counters()
        options = ActivityOptions.from_data(data.get("options"))
        runtime = temporal_runtime(settings, options, counters)
        cache = activity_cache(settings, options, data.get("cache_namespace"))
        result = await run_course(
            analysis,
            settings,
            runtime,
            progress=self._on_progress,
            cache=cache,
            batcher=ActivityBatcher(options, counters) if data.get("batch") else None,
            plan=self._plan_control(data),
            bank=[Exercise.model_validate(e) for e in data.get("bank") or ()],
        )
        report = result.report
        info = workflow.info()
        report.summary.update(
            engine="temporal",
            workflow_id=info.workflow_id,
            run_id=info.run_id,
            task_queue=info.task_queue,
            model_call_activities=counters.model_calls,
            embed_activities=counters.embed_batches,
        )
        return {
            "course": result.course.model_dump(mode="json") if result.course else None,
            "report": report.model_dump(mode="json"),
        }
