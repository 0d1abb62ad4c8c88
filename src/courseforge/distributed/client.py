"""Submitting courses to Temporal and waiting for them: the CLI's `generate --temporal` and the
service's job runner when `service.temporal_address` is set; the plan checkpoint of a course
waiting for its author (`workflow_plan`, `edit_workflow_plan`, `approve_workflow_plan`: the
`plan` query and the `edit_plan` / `approve_plan` signals).

The workflow id is the job id. Starting a job whose workflow is running attaches to it (a
restarted service or a second `generate` waits for the same course; nothing runs twice); a
completed one hands back its result; a failed, cancelled or terminated one starts afresh.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowQueryFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from ..cache import config_namespace
from ..config import Settings
from ..domain import AnalysisResult, Course, CoursePlan, Exercise, Report
from ..engine import GenerationResult, course_id_for
from ..errors import NotFound, RunError, UserError, WorkflowTimeout
from ..jobs import ProgressTracker, gate_edit, input_digest, job_bank, plan_control, run_job
from ..pipeline import ProgressEvent
from ..storage import Job, Store
from .codec import pinned_settings
from .worker import connect
from .workflow import PLAN_APPROVE_SIGNAL, PLAN_EDIT_SIGNAL, PLAN_QUERY, WORKFLOW_NAME, ActivityOptions

__all__ = [
    "ONE_QUERY_TIMEOUT_S",
    "TemporalJobRunner",
    "activity_options",
    "approve_workflow_plan",
    "cache_namespace",
    "edit_workflow_plan",
    "generate_on_temporal",
    "start_course",
    "wait_for_course",
    "workflow_plan",
]

#: Seconds a one-off query (not a best-effort poll) waits for a worker to answer it: a worker
#: busy on a loaded machine took over 10 s.
ONE_QUERY_TIMEOUT_S = 60.0
#: How a query that ran out of time fails: the client's own deadline ("Timeout expired") comes
#: back as CANCELLED, the server's as DEADLINE_EXCEEDED.
_TIMED_OUT = (RPCStatusCode.CANCELLED, RPCStatusCode.DEADLINE_EXCEEDED)
_ENDED = {
    WorkflowExecutionStatus.FAILED,
    WorkflowExecutionStatus.CANCELED,
    WorkflowExecutionStatus.TERMINATED,
    WorkflowExecutionStatus.TIMED_OUT,
}


def activity_options(settings: Settings) -> ActivityOptions:
    """The activity options for courses submitted with `settings` (`service.temporal_*`)."""
    service = settings.service
    known = ActivityOptions.__dataclass_fields__
    values = {
        name: getattr(service, f"temporal_{name}")
        for name in known
        if getattr(service, f"temporal_{name}", None) is not None
    }
    return ActivityOptions(**values)


def cache_namespace(settings: Settings, tenant: str = "") -> str | None:
    """The response-cache namespace of a course submitted with `settings` by `tenant`, as
    in-process (`engine.open_response_cache`, `jobs.InProcessRunner.cache_for`); None: off."""
    if settings.cache.mode == "off":
        return None
    shared = settings.cache.namespace or config_namespace(settings)
    return f"{shared}/tenant:{tenant}" if tenant else shared


def workflow_input(
    settings: Settings,
    analysis: AnalysisResult,
    course_id: str,
    options: ActivityOptions,
    *,
    tenant: str = "",
    review_plan: bool = False,
    approved_plan: CoursePlan | None = None,
    bank: Sequence[Exercise] = (),
    batch: bool = False,
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "analysis": analysis.model_dump(mode="json", exclude_unset=True),
        "course_id": course_id,
        "settings": pinned_settings(settings),
        "options": options.as_data(),
        "cache_namespace": cache_namespace(settings, tenant),
    }
    if review_plan:
        data["review_plan"] = True
    if approved_plan is not None:
        data["approved_plan"] = approved_plan.model_dump(mode="json")
    if bank:
        data["bank"] = [q.model_dump(mode="json") for q in bank]
    if batch:
        data["batch"] = True
    return data


def _digest(analysis: AnalysisResult) -> str:
    return input_digest(analysis.model_dump(mode="json", exclude_unset=True))


async def start_course(
    client: Client,
    settings: Settings,
    analysis: AnalysisResult,
    *,
    workflow_id: str,
    task_queue: str,
    options: ActivityOptions | None = None,
    tenant: str = "",
    review_plan: bool = False,
    approved_plan: CoursePlan | None = None,
    bank: Sequence[Exercise] = (),
    batch: bool = False,
) -> WorkflowHandle[Any, Any]:
    """Start the course's workflow, or attach to it when one with this id is running or has
    completed (a completed one's result is its course). `tenant` names its cache namespace;
    `review_plan`: it waits for its author after phase 2; `approved_plan`: go on with this plan;
    `bank`: vetted questions to reuse; `batch`: in batch mode (provider batch APIs, on the
    workers)."""
    course_id = course_id_for(analysis)
    data = workflow_input(
        settings,
        analysis,
        course_id,
        options or activity_options(settings),
        tenant=tenant,
        review_plan=review_plan,
        approved_plan=approved_plan,
        bank=bank,
        batch=batch,
    )
    try:
        return await client.start_workflow(
            WORKFLOW_NAME,
            data,
            id=workflow_id,
            task_queue=task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            memo={"input_digest": _digest(analysis), "course_id": course_id},
            static_summary=f"course {course_id}: {analysis.topic}"[:200],
        )
    except WorkflowAlreadyStartedError:  # completed before: its result stands
        return client.get_workflow_handle(workflow_id)


class _Follower:
    """Feeds the workflow's progress events (its `events` query) to a callback."""

    def __init__(self, handle: WorkflowHandle[Any, Any], on_event: Callable[[ProgressEvent], None]) -> None:
        self.handle = handle
        self.on_event = on_event
        self.since = 0

    async def poll(self) -> None:
        page: dict[str, Any] = await self.handle.query(
            "events", self.since, rpc_timeout=timedelta(seconds=10)
        )
        for e in page.get("events", []):
            self.on_event(
                ProgressEvent(**{k: e[k] for k in ("phase", "kind", "message", "task", "done", "total")})
            )
        self.since = int(page.get("next", self.since))

    async def follow(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            with contextlib.suppress(Exception):  # best effort: no worker yet, or it just ended
                await self.poll()


async def _waiting_plan(handle: WorkflowHandle[Any, Any], poll_s: float) -> tuple[dict[str, Any], str]:
    """The plan record once the workflow waits for its author (polls the `plan` query; a query
    answers after every signal sent before it, so an approval just sent is never seen as a wait)."""
    while True:
        with contextlib.suppress(Exception):  # best effort: no worker yet
            page: dict[str, Any] = await handle.query(PLAN_QUERY, rpc_timeout=timedelta(seconds=10))
            record = page.get("record")
            if isinstance(record, dict) and record.get("state") == "review":
                return record, str(page.get("course_id") or handle.id)
        await asyncio.sleep(poll_s)


def _plan_report(handle: WorkflowHandle[Any, Any], record: dict[str, Any], course_id: str) -> Report:
    """The report of a course waiting for its author on Temporal: what phase 2 spent (its call
    records are in the finished course's report; the workflow has not ended)."""
    plan = CoursePlan.model_validate(record["plan"])
    return Report(
        course_id=course_id,
        status="plan_review",
        total_cost_usd=plan.spent_usd,
        budget_usd=plan.budget_usd,
        summary={"engine": "temporal", "workflow_id": handle.id, "job_id": handle.id},
    )


async def wait_for_course(
    handle: WorkflowHandle[Any, Any],
    *,
    progress: Callable[[ProgressEvent], None] | None = None,
    poll_s: float = 0.5,
    review: bool = False,
) -> GenerationResult:
    """The workflow's course (None when generation failed) and report; with `review`, also
    returns (course None, `waiting_plan` set) when the workflow waits for its author's plan.
    Raises `RunError` when the workflow itself failed (a bug or a config error: no report)."""
    follower = _Follower(handle, progress) if progress else None
    task = asyncio.create_task(follower.follow(poll_s)) if follower else None
    finished = asyncio.ensure_future(handle.result())
    waiting = asyncio.ensure_future(_waiting_plan(handle, poll_s)) if review else None
    try:
        await asyncio.wait(
            [f for f in (finished, waiting) if f is not None], return_when=asyncio.FIRST_COMPLETED
        )
        if not finished.done() and waiting is not None:
            record, course_id = waiting.result()
            return GenerationResult(None, _plan_report(handle, record, course_id), waiting_plan=record)
        result: dict[str, Any] = finished.result()
    except WorkflowFailureError as exc:
        cause = exc.cause
        detail = getattr(cause, "message", None) or str(cause)
        raise RunError(f"workflow {handle.id} failed: {detail}") from exc
    finally:
        for pending in (task, finished, waiting):
            if pending is not None and not pending.done():
                pending.cancel()
                with contextlib.suppress(BaseException):
                    await pending
    if follower is not None:  # the events since the last poll
        with contextlib.suppress(Exception):
            await follower.poll()
    course = Course.model_validate(result["course"]) if result.get("course") else None
    return GenerationResult(course, Report.model_validate(result["report"]))


async def _query_once(client: Client, workflow_id: str, query: str, timeout_s: float) -> Any:
    """The workflow's answer to `query`. `NotFound` ("no such job") only when the workflow does
    not exist; `WorkflowTimeout` when it did not answer in `timeout_s`; `RunError` for any other
    failure (Temporal unreachable, the query failing in the workflow)."""
    try:
        return await client.get_workflow_handle(workflow_id).query(
            query, rpc_timeout=timedelta(seconds=timeout_s)
        )
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise NotFound("no such job", [("job", f"workflow {workflow_id!r}: {exc.message}")]) from exc
        if exc.status in _TIMED_OUT:
            raise WorkflowTimeout(workflow_id, timeout_s) from exc
        raise RunError(f"workflow {workflow_id!r}: the {query} query failed: {exc.message}") from exc
    except WorkflowQueryFailedError as exc:
        raise RunError(f"workflow {workflow_id!r}: the {query} query failed: {exc.message}") from exc


async def workflow_plan(
    client: Client, workflow_id: str, *, timeout_s: float = ONE_QUERY_TIMEOUT_S
) -> tuple[dict[str, Any], AnalysisResult, str]:
    """The plan record of a course waiting for its author on Temporal (state "review"), its
    input and course id. `UserError` when no such workflow waits for a plan (`NotFound` when
    there is no such workflow); `WorkflowTimeout` when it did not answer in `timeout_s`."""
    page: dict[str, Any] = await _query_once(client, workflow_id, PLAN_QUERY, timeout_s)
    record = page.get("record")
    if not isinstance(record, dict):
        raise UserError(
            "no plan to review",
            [("job", f"workflow {workflow_id!r} has no plan waiting (started without --review-plan?)")],
        )
    return record, AnalysisResult.model_validate(page["analysis"]), str(page.get("course_id") or workflow_id)


def _in_review(workflow_id: str, record: dict[str, Any]) -> None:
    if record.get("state") != "review":
        raise UserError(
            "plan not in review", [("job", f"workflow {workflow_id!r}'s plan is {record.get('state')}")]
        )


async def edit_workflow_plan(
    client: Client,
    settings: Settings,
    workflow_id: str,
    edited: CoursePlan,
    embed: Callable[[Sequence[str]], Any],
) -> CoursePlan:
    """Gate `edited` here (`jobs.gate_edit`: `PlanRefused`, nothing sent, when refused) and
    send it to the waiting workflow (`edit_plan` signal): its plan from then on."""
    record, analysis, course_id = await workflow_plan(client, workflow_id)
    _in_review(workflow_id, record)
    kept = await gate_edit(settings, analysis, course_id, record, edited, embed)
    await client.get_workflow_handle(workflow_id).signal(PLAN_EDIT_SIGNAL, kept)
    return CoursePlan.model_validate(kept["plan"])


async def approve_workflow_plan(
    client: Client, workflow_id: str, plan: CoursePlan | None = None
) -> CoursePlan:
    """Approve the plan the workflow shows (or `plan`): the `approve_plan` signal; the workflow
    re-gates it and goes on to the lessons (or waits again with the gates' reasons)."""
    record, _analysis, _course_id = await workflow_plan(client, workflow_id)
    _in_review(workflow_id, record)
    chosen = plan or CoursePlan.model_validate(record["plan"])
    await client.get_workflow_handle(workflow_id).signal(
        PLAN_APPROVE_SIGNAL, {"plan": chosen.model_dump(mode="json")}
    )
    return chosen


async def _existing(client: Client, workflow_id: str) -> tuple[WorkflowExecutionStatus | None, str | None]:
    """(status, input digest) of the latest run with this id, or (None, None)."""
    try:
        desc = await client.get_workflow_handle(workflow_id).describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return None, None
        raise
    memo = await desc.memo()
    digest = memo.get("input_digest")
    return desc.status, digest if isinstance(digest, str) else None


async def generate_on_temporal(
    settings: Settings,
    analysis: AnalysisResult,
    *,
    address: str,
    job_id: str | None,
    task_queue: str | None = None,
    namespace: str | None = None,
    progress: Callable[[ProgressEvent], None] | None = None,
    say: Callable[[str], object] = print,
    client: Client | None = None,
    review_plan: bool = False,
    bank: Sequence[Exercise] = (),
    batch: bool = False,
) -> tuple[Course | None, Report]:
    """The CLI's `generate --temporal`: the job id names the workflow (default: the input's
    course id; a completed or different-input workflow of that name moves an unnamed job on to
    `<id>-2`, `<id>-3`…, as in-process). `review_plan`: return (None, a "plan_review" report)
    once the workflow waits for its author's plan (`courseforge plan ... --temporal`); attaching
    to a workflow that waits does the same. `batch`: batch mode (`generate --temporal --batch`)."""
    namespace = namespace or settings.service.temporal_namespace
    task_queue = task_queue or settings.service.temporal_task_queue
    if client is None:
        client = await connect(address, namespace)
    digest = _digest(analysis)
    base = job_id or course_id_for(analysis)
    workflow_id, n = base, 1
    while True:
        status, existing = await _existing(client, workflow_id)
        same = existing == digest
        if status is not None and not same and job_id is not None:
            raise UserError(
                "job belongs to another input",
                [
                    (
                        "--job",
                        f"workflow {job_id!r} was started from a different analysis_result; use another id",
                    )
                ],
            )
        # Unnamed, as in-process: a completed job or another input's moves on to the next id.
        if status is None or (same and (job_id is not None or status != WorkflowExecutionStatus.COMPLETED)):
            break
        n += 1
        workflow_id = f"{base}-{n}"
    if status is None:
        say(f"job {workflow_id}: submitted to Temporal {address} (task queue {task_queue!r})")
    elif status in _ENDED:
        say(f"job {workflow_id}: last run ended {status.name.lower()}; starting again")
    elif status == WorkflowExecutionStatus.COMPLETED:
        say(f"job {workflow_id}: already completed; writing its result")
    else:
        say(f"job {workflow_id}: attaching to the running workflow")
    handle = await start_course(
        client,
        settings,
        analysis,
        workflow_id=workflow_id,
        task_queue=task_queue,
        review_plan=review_plan,
        bank=bank,
        batch=batch,
    )
    attached = status is not None and status not in _ENDED
    result = await wait_for_course(handle, progress=progress, review=review_plan or attached)
    return result.course, result.report


class TemporalJobRunner:
    """The service's job runner when `service.temporal_address` is set (a `jobs.JobRunner`): the
    course runs as a workflow on the worker fleet; this process only starts it, mirrors its
    progress into the job (and SSE), and stores the result through the shared `jobs.run_job`.
    `batch`: its courses run in batch mode (the service's runner of `?mode=batch` jobs)."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        client: Client | None = None,
        poll_s: float = 1.0,
        batch: bool = False,
    ) -> None:
        address = settings.service.temporal_address
        if not address:
            raise ValueError("TemporalJobRunner needs service.temporal_address")
        self.settings = settings
        self.store = store
        self.address = address
        self.task_queue = settings.service.temporal_task_queue
        self.poll_s = poll_s
        self.batch = batch
        self._client = client
        self._lock = asyncio.Lock()

    async def client(self) -> Client:
        async with self._lock:
            if self._client is None:
                self._client = await connect(self.address, self.settings.service.temporal_namespace)
            return self._client

    async def run(
        self,
        job: Job,
        *,
        analysis: AnalysisResult,
        progress: Callable[[ProgressEvent], None] | None = None,
        tracker: ProgressTracker | None = None,
    ) -> GenerationResult:
        client = await self.client()
        control = plan_control(job)
        approved = control.approved if control is not None else None
        handle = await start_course(
            client,
            self.settings,
            analysis,
            workflow_id=job.id,
            task_queue=self.task_queue,
            tenant=job.tenant,
            review_plan=control is not None,
            approved_plan=approved,
            bank=job_bank(job),
            batch=self.batch,
        )
        if approved is not None:  # a waiting workflow goes on (a new one started with it ignores it)
            await handle.signal(PLAN_APPROVE_SIGNAL, {"plan": approved.model_dump(mode="json")})

        async def execute(on_event: Callable[[ProgressEvent], None]) -> GenerationResult:
            return await wait_for_course(
                handle, progress=on_event, poll_s=self.poll_s, review=control is not None
            )

        return await run_job(
            self.store,
            job,
            self.settings,
            execute=execute,
            interrupted=lambda t: self._interrupted(handle, job.id, t),
            progress=progress,
            tracker=tracker,
            flush_interval_s=self.poll_s,
        )

    async def discard(self, job: Job) -> None:
        """The job was cancelled while its workflow waits for the plan's approval: cancel the
        workflow (it would otherwise wait forever)."""
        handle = (await self.client()).get_workflow_handle(job.id)
        with contextlib.suppress(RPCError):  # no such workflow, or it has ended
            if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                await handle.cancel()

    async def _interrupted(
        self, handle: WorkflowHandle[Any, Any], job_id: str, tracker: ProgressTracker
    ) -> None:
        """Cancelled on request: cancel the workflow too. Stopped for any other reason (the
        service shutting down): the workflow goes on; the next start re-attaches to it."""
        current = await self.store.get_job(job_id)
        if current is not None and current.cancel_requested:
            await handle.cancel()
            await self.store.update_job(job_id, status="cancelled", progress=tracker.data)
        else:
            await self.store.update_job(job_id, status="queued", progress=tracker.data)
