"""Durable course jobs: one job-runner protocol, run in-process or on Temporal.

A job is an analysis_result stored under an id. Running it (`JobRunner.run`) is `run_job`, the
job accounting both runners share — a new run number, progress saved while it runs, the job
marked queued/cancelled on interruption and failed on a crash, then the course, report, call
records and review items saved in one step — around the runner's own way of producing the
course: `InProcessRunner` runs `engine.run_course` here with every finished model call
checkpointed in the store (a resumed job replays them instead of paying again);
`distributed.TemporalJobRunner` submits the course to the worker fleet and waits for it.

Replay rules (in-process): a checkpoint replays only when the new request is identical (same
model, messages, schema, limits: `engine.request_digest`); only answered calls are checkpointed
(accepted or later rejected by a gate: both were paid); embeddings are recomputed (free and
deterministic). The window between a provider's answer and the checkpoint commit (one local
transaction) is the only place a kill can make a call be paid twice. The budget cap covers the
whole course across runs; the report's money figures are defined in docs/report.md.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

from ..cache import ResponseCache
from ..config import Settings
from ..domain import AnalysisResult, Course, CoursePlan, Exercise, Report
from ..engine import Checkpoints, Engine, GenerationResult, course_id_for, open_response_cache
from ..errors import UserError
from ..pipeline import ProgressEvent
from ..pipeline.state import PlanControl
from ..storage import Job, Store
from .progress import ProgressSaver, ProgressTracker, tracked_run
from .reviews import review_items

__all__ = [
    "InProcessRunner",
    "JobRunner",
    "generate_durably",
    "input_digest",
    "job_bank",
    "job_mode",
    "new_job",
    "plan_control",
    "resolve_job",
    "run_job",
    "save_run",
]

Progress = Callable[[ProgressEvent], None]


class JobRunner(Protocol):
    async def run(
        self,
        job: Job,
        *,
        analysis: AnalysisResult,
        progress: Progress | None = None,
        tracker: ProgressTracker | None = None,
    ) -> GenerationResult:
        """Run (or resume) `job`; its course, report, call records and review items are saved
        and the job ends completed, failed, or (if this task is cancelled) cancelled/queued."""
        ...

    async def discard(self, job: Job) -> None:
        """A job not running here (waiting for its plan's author) was cancelled: end whatever
        still holds it elsewhere (a Temporal workflow waiting for the approval signal)."""
        ...


def input_digest(analysis: Mapping[str, Any]) -> str:
    raw = json.dumps(analysis, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(raw.encode()).hexdigest()


def new_job(
    job_id: str,
    analysis: AnalysisResult,
    *,
    idempotency_key: str | None = None,
    mode: str = "normal",
    tenant: str = "",
    review_plan: bool = False,
    bank: Sequence[Exercise] = (),
) -> Job:
    """A job to store. `mode` "batch" (provider batch APIs) is kept beside its progress, so a
    resumed job runs the way it was submitted; `tenant` owns it ("" the default tenant);
    `review_plan`: it stops after phase 2 for an author (status "plan_review"); `bank`: the
    vetted questions its lessons reuse (kept with it, so every run and runner uses them)."""
    data = analysis.model_dump(mode="json", exclude_unset=True)
    progress = ProgressTracker.initial()
    if mode != "normal":
        progress["mode"] = mode
    if review_plan:
        progress["review_plan"] = True
    if bank:
        progress["bank"] = [q.model_dump(mode="json") for q in bank]
    return Job(
        id=job_id,
        course_id=course_id_for(analysis),
        analysis=data,
        input_digest=input_digest(data),
        idempotency_key=idempotency_key,
        tenant=tenant,
        progress=progress,
    )


def job_mode(job: Job) -> str:
    """How a job runs: "normal" or "batch" (see `new_job`)."""
    return str(job.progress.get("mode") or "normal")


#: What a job keeps in its progress besides the phases: how it runs, its plan checkpoint and
#: its question bank.
_KEPT = ("mode", "review_plan", "plan", "bank")


def job_bank(job: Job) -> list[Exercise]:
    """The question bank the job was submitted with (`new_job`), [] when none."""
    return [Exercise.model_validate(q) for q in job.progress.get("bank") or ()]


def plan_control(job: Job) -> PlanControl | None:
    """What the job asks of the plan checkpoint: stop for review (asked, not yet approved), go
    on with the approved plan, or nothing (no review asked)."""
    record = job.progress.get("plan")
    if isinstance(record, dict) and record.get("state") == "approved":
        return PlanControl(review=True, approved=CoursePlan.model_validate(record["plan"]))
    if job.progress.get("review_plan"):
        return PlanControl(review=True)
    return None


async def save_run(
    store: Store,
    job_id: str,
    *,
    run: int,
    course: Course | None,
    report: Report,
    settings: Settings,
    tracker: ProgressTracker,
    plan: dict[str, Any] | None = None,
) -> None:
    """Store a finished run: its progress, course (None: generation failed), report, call
    records and review items; the job ends completed or failed, or "plan_review" when the run
    stopped at the plan checkpoint (`plan`: the plan record, kept in its progress)."""
    if plan is not None:
        tracker.data["plan"] = plan
    await store.update_job(job_id, progress=tracker.data)
    await store.save_result(
        job_id,
        run=run,
        status="completed" if course else ("plan_review" if plan is not None else "failed"),
        course=course.model_dump(mode="json") if course else None,
        report=report.model_dump(mode="json"),
        calls=[c.model_dump(mode="json") for c in report.calls],
        reviews=(
            review_items(
                job_id,
                course,
                spot_check_rate=settings.gates.spot_check_rate,
                seed=settings.gates.spot_check_seed,
            )
            if course
            else ()
        ),
        error="" if course or plan is not None else report.failure_reason,
        course_status=course.status if course else "",
    )


async def run_job(
    store: Store,
    job: Job,
    settings: Settings,
    *,
    execute: Callable[[Progress], Awaitable[GenerationResult]],
    interrupted: Callable[[ProgressTracker], Awaitable[None]],
    progress: Progress | None = None,
    tracker: ProgressTracker | None = None,
    flush_interval_s: float = 0.5,
    saver: ProgressSaver | None = None,
) -> GenerationResult:
    """The job accounting every runner shares, around `execute(progress)`, which produces the
    course (see the module docstring). `saver`: the process's shared progress writer."""
    run_no = await store.start_run(job.id)
    tracker = tracker or ProgressTracker()
    tracker.data.update({k: job.progress[k] for k in _KEPT if k in job.progress})
    async with tracked_run(
        store,
        job.id,
        tracker,
        flush_interval_s=flush_interval_s,
        interrupted=lambda: interrupted(tracker),
        saver=saver,
    ):
        result = await execute(tracker.feeding(progress))
    result.report.summary.update(job_id=job.id, run=run_no)
    await save_run(
        store,
        job.id,
        run=run_no,
        course=result.course,
        report=result.report,
        settings=settings,
        tracker=tracker,
        plan=result.plan,
    )
    return result


class InProcessRunner:
    """Runs stored jobs on an engine in this process, checkpointing every finished call and
    serving the response cache (`cache.mode`; entries in the same store) across jobs."""

    def __init__(
        self,
        engine: Engine,
        store: Store,
        *,
        flush_interval_s: float = 0.5,
        cache: ResponseCache | None = None,
        batch: bool = False,
        bank: Sequence[Exercise] = (),
        saver: ProgressSaver | None = None,
    ) -> None:
        """`cache`: a response cache of its own (a tenant's namespace); default: the config's.
        `batch`: run jobs in batch mode (provider batch APIs, batches recorded in `store`).
        `saver`: one progress writer for every job of the process (a service's)."""
        self.engine = engine
        self.batch = batch
        #: A vetted question bank every job of this runner reuses (`generate --question-bank`).
        self.bank = tuple(bank)
        self.store = store
        self.flush_interval_s = flush_interval_s
        self.saver = saver
        self._cache = cache
        self._cache_ready = cache is not None
        self._tenant_caches: dict[str, ResponseCache] = {}

    @property
    def cache(self) -> ResponseCache | None:
        """The response cache the default tenant's jobs share (opened at first use)."""
        if not self._cache_ready:
            self._cache = open_response_cache(self.engine.settings, self.store)
            self._cache_ready = True
        return self._cache

    def cache_for(self, tenant: str) -> ResponseCache | None:
        """The response cache of `tenant`'s jobs: the shared one's namespace with the tenant
        after it, so tenants never get each other's answers ("" is the default tenant's)."""
        shared = self.cache
        if not tenant or shared is None:
            return shared
        if tenant not in self._tenant_caches:
            self._tenant_caches[tenant] = shared.for_namespace(f"{shared.namespace}/tenant:{tenant}")
        return self._tenant_caches[tenant]

    async def run(
        self,
        job: Job,
        *,
        analysis: AnalysisResult,
        progress: Progress | None = None,
        tracker: ProgressTracker | None = None,
    ) -> GenerationResult:
        spent: list[Report] = []

        async def execute(on_event: Progress) -> GenerationResult:
            checkpoints = await Checkpoints.load(self.store, job.id)
            batcher = self.engine.batcher(self.store) if self.batch else None
            return await self.engine.generate(
                analysis,
                progress=on_event,
                checkpoints=checkpoints,
                cache=self.cache_for(job.tenant),
                batcher=batcher,
                on_cancel=spent.append,
                plan=plan_control(job),
                bank=self.bank or job_bank(job),
            )

        return await run_job(
            self.store,
            job,
            self.engine.settings,
            execute=execute,
            interrupted=lambda t: self._interrupted(job.id, t, spent[-1] if spent else None),
            progress=progress,
            tracker=tracker,
            flush_interval_s=self.flush_interval_s,
            saver=self.saver,
        )

    async def discard(self, job: Job) -> None:
        """Nothing to end: an in-process job waiting for its plan holds nothing."""

    async def _interrupted(self, job_id: str, tracker: ProgressTracker, spent: Report | None) -> None:
        """Cancelled on request -> "cancelled", with the run's spend stored as its report (status
        "cancelled": every call sent, in-flight ones marked); stopped for any other reason
        (shutdown, Ctrl-C) -> back to "queued", resumed by the next run or service start."""
        current = await self.store.get_job(job_id)
        cancelled = current is not None and current.cancel_requested
        await self.store.update_job(
            job_id, status="cancelled" if cancelled else "queued", progress=tracker.data
        )
        if cancelled and current is not None and spent is not None:
            spent.summary.update(job_id=job_id, run=current.runs)
            await self.store.save_result(
                job_id,
                run=current.runs,
                status="cancelled",
                course=None,
                report=spent.model_dump(mode="json"),
                calls=[c.model_dump(mode="json") for c in spent.calls],
                error="cancelled on request",
            )


async def resolve_job(store: Store, analysis: AnalysisResult, job_id: str | None) -> tuple[Job, str]:
    """The job a `generate` command runs, and a line saying what happens.

    Named (`--job ID`): resumed when unfinished, reused (nothing regenerated) when completed;
    an input that differs from the job's is a UserError. Unnamed: the input's course id (else a
    stable id from the topic), resumed when unfinished; when that job is completed or holds
    another input, the next free `<id>-2`, `<id>-3`…"""
    fresh = new_job(job_id or course_id_for(analysis), analysis)
    base, n = fresh.id, 1
    while True:
        existing = await store.get_job(fresh.id)
        if existing is None:
            job, created = await store.create_job(fresh)
            if created:
                return job, f"job {job.id}: new"
            continue  # another process took the id between the read and the write
        same_input = existing.input_digest == fresh.input_digest
        if job_id is not None:
            if not same_input:
                raise UserError(
                    "job belongs to another input",
                    [
                        (
                            "--job",
                            f"job {job_id!r} was created from a different analysis_result; use another id",
                        )
                    ],
                )
            if existing.status == "completed":
                return existing, f"job {existing.id}: already completed; writing its stored course"
            return (
                existing,
                f"job {existing.id}: resuming ({existing.status}, {existing.runs} earlier run(s))",
            )
        if same_input and existing.status != "completed":
            return (
                existing,
                f"job {existing.id}: resuming ({existing.status}, {existing.runs} earlier run(s))",
            )
        n += 1
        fresh = new_job(f"{base}-{n}", analysis)


async def generate_durably(
    settings: Settings,
    analysis: AnalysisResult,
    *,
    job_id: str | None,
    progress: Progress | None = None,
    say: Callable[[str], object] = print,
    engine: Engine | None = None,
    store: Store | None = None,
    batch: bool = False,
    review_plan: bool = False,
    bank: Sequence[Exercise] = (),
) -> tuple[Course | None, Report]:
    """The CLI's `generate`: resolve the job in the configured store, then run or resume it
    (a completed job hands back its stored course and report); `batch`: in batch mode;
    `review_plan`: stop after phase 2 until the plan is approved (the report's status is then
    "plan_review" and there is no course)."""
    from ..storage import masked_url, open_store, storage_url

    own_store = store is None
    if store is None:
        url = storage_url(settings.storage.url)
        store = open_store(url)
        say(f"store: {masked_url(url)}")
    own_engine = engine is None
    try:
        await store.init()
        job, message = await resolve_job(store, analysis, job_id)
        say(message)
        if review_plan and job.status != "completed" and not job.progress.get("review_plan"):
            job.progress["review_plan"] = True
            await store.update_job(job.id, progress=job.progress)
        if job.status == "completed":
            course_data, report_data = await store.get_course(job.id), await store.get_report(job.id)
            if course_data is not None and report_data is not None:
                return Course.model_validate(course_data), Report.model_validate(report_data)
        engine = engine or Engine(settings)
        try:
            runner = InProcessRunner(engine, store, batch=batch, bank=bank)
            result = await runner.run(job, analysis=analysis, progress=progress)
        finally:
            if own_engine:
                await engine.aclose()
        hits = result.report.cache_hits
        if hits:
            say(
                f"job {job.id}: {hits} call(s) answered from the response cache "
                f"(${result.report.summary.get('cache_saved_usd', 0):.6f} saved)"
            )
        replayed = result.report.summary.get("replayed_calls", 0)
        if replayed:
            say(
                f"job {job.id}: {replayed} call(s) replayed from the store "
                f"(${result.report.summary.get('replayed_cost_usd', 0):.6f} not paid again)"
            )
        return result.course, result.report
    finally:
        if own_store:
            await store.close()
