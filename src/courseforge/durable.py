"""Durable course jobs in-process: every finished model call is checkpointed in the store
under (job_id, step_key) before the pipeline sees its answer, so a run that dies (kill -9, a
deploy, a crash) resumes by replaying finished calls from the store and paying only for the rest.

Replay rules
- A checkpoint replays only when the new request is identical (same model, messages, schema,
  limits: `request_digest`); otherwise the call is made again and the checkpoint overwritten.
  Step keys (phase/task/attempt/tier) are deterministic given the same answers, and replayed
  answers are the same answers, so a resumed run walks the same path.
- Only answered calls are checkpointed (accepted or later rejected by a gate: both were paid).
  Provider errors are not: nothing was paid, and the call may succeed now.
- Embedding batches are recomputed on resume: they cost no money and are deterministic.
- The window between a provider's answer and the checkpoint commit (one local transaction) is
  the only place a kill can make a call be paid twice.

Money in the report: `total_cost_usd` is the cost of the course, each call counted once in the
run that paid it; a replayed call's record has `replayed: true`, its original `cost_usd`, and is
not paid again. The budget cap covers the whole course across runs (restarting never buys a
fresh budget). `summary.replayed_calls`, `summary.replayed_cost_usd` (paid by earlier runs) and
`summary.paid_this_run_usd` split the total.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from decimal import Decimal
from typing import Any

from .config import Settings
from .domain import AnalysisResult, CallRecord, Course, Report, ReviewFlag
from .engine import Engine, GenerationResult, course_id_for
from .errors import UserError
from .ledger import Ledger
from .pipeline import ProgressEvent
from .pipeline.run import PHASES
from .pipeline.state import track_progress
from .providers import ChatModel, ChatRequest, ChatResponse, Embedder, Usage
from .providers.effects import CallResult, CallSpec
from .runtime import InProcessEffects
from .storage import Checkpoint, Job, ReviewItem, Store

__all__ = [
    "CheckpointingEffects",
    "JobRunner",
    "ProgressTracker",
    "input_digest",
    "new_job",
    "request_digest",
    "resolve_job",
    "review_items",
    "revise_review",
    "save_run",
    "tracked_run",
    "unanswered_reviews",
]

log = logging.getLogger("courseforge.durable")


def request_digest(model_id: str, request: ChatRequest) -> str:
    """Identity of a request's content (not its timeout or log tags)."""
    payload = {
        "model": model_id,
        "messages": [[m.role, m.content] for m in request.messages],
        "schema": request.json_schema,
        "schema_name": request.schema_name,
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
    }
    raw = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()


def input_digest(analysis: Mapping[str, Any]) -> str:
    raw = json.dumps(analysis, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(raw.encode()).hexdigest()


def new_job(job_id: str, analysis: AnalysisResult, *, idempotency_key: str | None = None) -> Job:
    data = analysis.model_dump(mode="json", exclude_unset=True)
    return Job(
        id=job_id,
        course_id=course_id_for(analysis),
        analysis=data,
        input_digest=input_digest(data),
        idempotency_key=idempotency_key,
        progress=ProgressTracker.initial(),
    )


class CheckpointingEffects(InProcessEffects):
    """`InProcessEffects` that replays finished calls from `checkpoints` and writes each new
    answered call to the store before handing it to the pipeline."""

    def __init__(
        self,
        settings: Settings,
        models: Mapping[str, ChatModel],
        ledger: Ledger,
        embedder: Embedder,
        *,
        store: Store,
        job_id: str,
        checkpoints: Mapping[str, Checkpoint],
    ) -> None:
        super().__init__(settings, models, ledger, embedder)
        self._store = store
        self._job_id = job_id
        self._checkpoints = dict(checkpoints)
        self.replayed = 0
        self.replayed_cost = Decimal(0)

    async def call(self, spec: CallSpec) -> CallResult:
        model_id = self._settings.routing.tiers[spec.tier]
        digest = request_digest(model_id, spec.request)
        cp = self._checkpoints.get(spec.step_key)
        if cp is not None and cp.request_digest == digest and cp.model == model_id:
            return self._replay(spec, cp)
        result = await super().call(spec)
        usage, response = result.response.usage, result.response
        checkpoint = Checkpoint(
            job_id=self._job_id,
            step_key=spec.step_key,
            request_digest=digest,
            model=model_id,
            text=response.text,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cached_tokens=usage.cached_tokens,
            cost_usd=result.record.cost_usd,
            cost_source=result.record.cost_source,
            latency_ms=result.record.latency_ms,
            response_model=response.model,
            finish_reason=response.finish_reason,
        )
        # Shielded: a cancelled job still keeps what it has paid for.
        await asyncio.shield(self._store.put_checkpoint(checkpoint))
        self._checkpoints[spec.step_key] = checkpoint
        return result

    def _replay(self, spec: CallSpec, cp: Checkpoint) -> CallResult:
        record = CallRecord(
            phase=spec.phase,
            task=spec.task,
            model=cp.model,
            tier=spec.tier,
            attempt=spec.attempt,
            input_tokens=cp.input_tokens,
            output_tokens=cp.output_tokens,
            cached_tokens=cp.cached_tokens,
            cost_usd=cp.cost_usd,
            latency_ms=0.0,
            outcome="ok",
            reason=f"replayed from checkpoint (paid in an earlier run; took {cp.latency_ms:.0f} ms then)",
            started_ms=round(self.now_ms(), 1),
            replayed=True,
            cost_source=cp.cost_source,
        )
        # Counted as spent (the course did pay it, once) but never reserved or sent again.
        self._ledger.record(record)
        self.replayed += 1
        self.replayed_cost += cp.cost_usd
        usage = Usage(cp.input_tokens, cp.output_tokens, cp.cached_tokens, None)
        response = ChatResponse(cp.text, usage, 0.0, cp.response_model, cp.finish_reason)
        return CallResult(response, record)


class ProgressTracker:
    """Per-phase progress of one job as JSON data, fed by the pipeline's progress events."""

    def __init__(self, initial: Mapping[str, Any] | None = None) -> None:
        self.data: dict[str, Any] = json.loads(json.dumps(initial or self.initial()))
        self.dirty = False
        self.listeners: list[Callable[[dict[str, Any]], None]] = []

    @staticmethod
    def initial() -> dict[str, Any]:
        return {
            "phases": {p: {"state": "pending", "done": 0, "total": 0} for p in PHASES},
            "message": "",
        }

    def __call__(self, event: ProgressEvent) -> None:
        track_progress(self.data, event)
        self.dirty = True
        payload = event.as_data()
        for listener in list(self.listeners):
            listener(payload)

    def feeding(self, progress: Callable[[ProgressEvent], None] | None) -> Callable[[ProgressEvent], None]:
        """A progress callback that updates this tracker, then calls `progress` (when given)."""

        def on_event(event: ProgressEvent) -> None:
            self(event)
            if progress:
                progress(event)

        return on_event


def _uncertainty(score: float | None, settings: Settings) -> float:
    """1 when the deciding score sat on the pass threshold (a coin flip), falling to 0 at the
    severe threshold or as far above; 0.5 when no score decided (a rule or a failure)."""
    thresholds = settings.gates.similarity.get(settings.gates.embedding_model)
    if score is None or thresholds is None:
        return 0.5
    span = max(thresholds.pass_at - thresholds.severe_below, 1e-6)
    return round(max(0.0, 1.0 - abs(score - thresholds.pass_at) / span), 4)


def review_items(job_id: str, course: Course, settings: Settings) -> list[ReviewItem]:
    items = []
    for i, flag in enumerate(course.review):
        target = flag.target.removeprefix("lesson:")
        items.append(
            ReviewItem(
                id=f"{job_id}:{i}:{target}",
                job_id=job_id,
                target=target,
                reason=flag.reason,
                gate=flag.gate,
                uncertainty=_uncertainty(flag.score, settings),
            )
        )
    return items


def annotate_report(report: Report, effects: CheckpointingEffects | None, run: int, job_id: str) -> None:
    replayed = [c for c in report.calls if c.replayed]
    replayed_cost = sum((c.cost_usd for c in replayed), Decimal(0))
    report.summary.update(
        job_id=job_id,
        run=run,
        replayed_calls=len(replayed),
        replayed_cost_usd=float(replayed_cost),
        paid_this_run_usd=float(report.total_cost_usd - replayed_cost),
    )


@contextlib.asynccontextmanager
async def tracked_run(
    store: Store,
    job_id: str,
    tracker: ProgressTracker,
    *,
    flush_interval_s: float,
    interrupted: Callable[[], Awaitable[None]],
) -> AsyncIterator[None]:
    """Around one run of a job (in-process or on Temporal): saves the tracker's progress every
    `flush_interval_s` (best effort); a cancelled run awaits `interrupted()` (shielded, its
    errors ignored) before the cancellation goes on; a failed run marks the job failed."""
    flusher = asyncio.create_task(_flush_progress(store, job_id, tracker, flush_interval_s))
    try:
        yield
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await asyncio.shield(interrupted())
        raise
    except Exception as exc:
        await store.update_job(
            job_id, status="failed", error=f"{type(exc).__name__}: {exc}"[:1000], progress=tracker.data
        )
        raise
    finally:
        flusher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await flusher


async def _flush_progress(store: Store, job_id: str, tracker: ProgressTracker, interval_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)
        if tracker.dirty:
            tracker.dirty = False
            try:
                await store.update_job(job_id, progress=tracker.data)
            except Exception:  # progress is best effort; the result write is not
                log.warning("could not save progress of job %s", job_id, exc_info=True)


async def save_run(
    store: Store,
    job_id: str,
    *,
    run: int,
    course: Course | None,
    report: Report,
    settings: Settings,
    tracker: ProgressTracker,
) -> None:
    """Store a finished run: its progress, course (None: generation failed), report, call
    records and review items; the job ends completed or failed."""
    await store.update_job(job_id, progress=tracker.data)
    await store.save_result(
        job_id,
        run=run,
        status="completed" if course else "failed",
        course=course.model_dump(mode="json") if course else None,
        report=report.model_dump(mode="json"),
        calls=[c.model_dump(mode="json") for c in report.calls],
        reviews=review_items(job_id, course, settings) if course else (),
        error="" if course else report.failure_reason,
        course_status=course.status if course else "",
    )


class JobRunner:
    """Runs stored jobs on an engine with checkpointing effects; resumes unfinished ones."""

    def __init__(self, engine: Engine, store: Store, *, flush_interval_s: float = 0.5) -> None:
        self.engine = engine
        self.store = store
        self.flush_interval_s = flush_interval_s

    async def run(
        self,
        job: Job,
        *,
        analysis: AnalysisResult,
        progress: Callable[[ProgressEvent], None] | None = None,
        tracker: ProgressTracker | None = None,
    ) -> GenerationResult:
        """Run (or resume) `job`. Saves course, report, call records and review items; the
        job ends completed, failed or (if this task is cancelled) cancelled."""
        store = self.store
        run_no = await store.start_run(job.id)
        checkpoints = await store.load_checkpoints(job.id)
        tracker = tracker or ProgressTracker()
        effects_box: list[CheckpointingEffects] = []

        def factory(
            settings: Settings, models: Mapping[str, ChatModel], ledger: Ledger, embedder: Embedder
        ) -> CheckpointingEffects:
            effects = CheckpointingEffects(
                settings, models, ledger, embedder, store=store, job_id=job.id, checkpoints=checkpoints
            )
            effects_box.append(effects)
            return effects

        async with tracked_run(
            store,
            job.id,
            tracker,
            flush_interval_s=self.flush_interval_s,
            interrupted=lambda: self._interrupted(job.id, tracker),
        ):
            result = await self.engine.generate(
                analysis, progress=tracker.feeding(progress), effects_factory=factory
            )
        annotate_report(result.report, effects_box[0] if effects_box else None, run_no, job.id)
        await save_run(
            store,
            job.id,
            run=run_no,
            course=result.course,
            report=result.report,
            settings=self.engine.settings,
            tracker=tracker,
        )
        return result

    async def _interrupted(self, job_id: str, tracker: ProgressTracker) -> None:
        """Cancelled on request -> "cancelled"; stopped for any other reason (shutdown, Ctrl-C)
        -> back to "queued", resumed by the next run or service start."""
        current = await self.store.get_job(job_id)
        status = "cancelled" if current is not None and current.cancel_requested else "queued"
        await self.store.update_job(job_id, status=status, progress=tracker.data)


async def unanswered_reviews(store: Store, job_id: str, *, besides: str = "") -> list[ReviewItem]:
    """The job's review items still waiting for a person or a regeneration (other than
    `besides`): while there are any, its course stays needs_review."""
    return [
        r
        for status in ("open", "regenerating")
        for r in await store.list_reviews(status=status, limit=100_000, job_id=job_id)
        if r.id != besides
    ]


def _revision_tag(item: ReviewItem) -> str:
    """Step-key tag of this item's next regeneration: the same one again after an interruption
    (so finished calls replay), a new one for each later request on the same item."""
    digest = hashlib.sha256(item.id.encode()).hexdigest()[:10]
    return f"review-{digest}-{len(item.resolution.get('history', [])) + 1}"


async def revise_review(engine: Engine, store: Store, review_id: str) -> ReviewItem:
    """Carry out a reviewer's "regenerate" on item `review_id` (status "regenerating", the
    reviewer's note in its resolution): the lesson is generated again with the note as feedback,
    through checkpointing effects under the job's id, so running this again after a crash pays
    only for calls that had not finished. Then, in one transaction: the lesson replaced in the
    stored course (only when the new one was generated), the calls appended to the job's records
    and report (totals recomputed), and the item "regenerated" (every gate passed) or "open" again
    with the new reason (still flagged, or the regeneration failed). Returns the updated item."""
    item = await store.get_review(review_id)
    if item is None or item.status != "regenerating":
        raise UserError("nothing to regenerate", [("review_id", f"{review_id!r} is not regenerating")])
    job = await store.get_job(item.job_id)
    course_data, report_data = await store.get_course(item.job_id), await store.get_report(item.job_id)
    if job is None or course_data is None or report_data is None:
        raise UserError("the job has no stored course", [("review_id", f"job {item.job_id!r}")])
    from .pipeline import validate_analysis

    analysis = validate_analysis(job.analysis)
    course, report = Course.model_validate(course_data), Report.model_validate(report_data)
    checkpoints = await store.load_checkpoints(job.id)

    def factory(
        settings: Settings, models: Mapping[str, ChatModel], ledger: Ledger, embedder: Embedder
    ) -> CheckpointingEffects:
        return CheckpointingEffects(
            settings, models, ledger, embedder, store=store, job_id=job.id, checkpoints=checkpoints
        )

    note = str(item.resolution.get("note", ""))
    tag = _revision_tag(item)
    result = await engine.revise(
        analysis,
        course,
        item.target,
        note=note,
        tag=tag,
        spent_usd=report.total_cost_usd,
        effects_factory=factory,
    )
    revision = result.revision
    if revision.lesson is not None:
        for section in course.sections:
            section.lessons = [revision.lesson if x.id == revision.lesson.id else x for x in section.lessons]
    target = f"lesson:{item.target}"
    course.review = [f for f in course.review if f.target != target]
    if revision.status != "accepted":
        reason = (
            f"regenerated, still flagged: {revision.reason}"
            if revision.lesson is not None
            else f"regeneration failed: {revision.reason}"
        )
        course.review.append(ReviewFlag(target=target, reason=reason[:1000], gate="lesson"))
    # The report: every call counted once, totals recomputed over all of them.
    report.calls += result.calls
    report.decisions += result.decisions
    report.total_cost_usd = sum((c.cost_usd for c in report.calls), Decimal(0))
    report.by_phase = Ledger.totals(report.calls, "phase")
    report.by_model = Ledger.totals(report.calls, "model")
    if revision.gates is not None:
        report.lessons = [revision.gates if x.lesson_id == item.target else x for x in report.lessons]
    report.review_flags = len(course.review)
    paid = sum((c.cost_usd for c in result.calls if not c.replayed), Decimal(0))
    entry = {
        "tag": tag,
        "status": revision.status,
        "reason": revision.reason[:500],
        "calls": len(result.calls),
        "replayed_calls": sum(1 for c in result.calls if c.replayed),
        "paid_usd": float(paid),
    }
    resolution = {**item.resolution, "history": [*item.resolution.get("history", []), entry]}
    review_status = "regenerated" if revision.status == "accepted" else "open"
    review_reason = item.reason if revision.status == "accepted" else course.review[-1].reason
    still_open = await unanswered_reviews(store, job.id, besides=item.id) or review_status == "open"
    course.status = "needs_review" if still_open else "approved"
    report.summary["revisions"] = int(report.summary.get("revisions", 0)) + 1
    await store.save_revision(
        job.id,
        run=max(job.runs, 1),
        course=course.model_dump(mode="json"),
        course_status=course.status,
        report=report.model_dump(mode="json"),
        calls=[c.model_dump(mode="json") for c in result.calls],
        review_id=item.id,
        review_status=review_status,
        review_reason=review_reason,
        resolution=resolution,
    )
    updated = await store.get_review(item.id)
    assert updated is not None
    return updated


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
    progress: Callable[[ProgressEvent], None] | None = None,
    say: Callable[[str], object] = print,
    engine: Engine | None = None,
    store: Store | None = None,
) -> tuple[Course | None, Report]:
    """The CLI's `generate`: resolve the job in the configured store, then run or resume it
    (a completed job hands back its stored course and report)."""
    from .storage import masked_url, open_store, storage_url

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
        if job.status == "completed":
            course_data, report_data = await store.get_course(job.id), await store.get_report(job.id)
            if course_data is not None and report_data is not None:
                return Course.model_validate(course_data), Report.model_validate(report_data)
        engine = engine or Engine(settings)
        try:
            result = await JobRunner(engine, store).run(job, analysis=analysis, progress=progress)
        finally:
            if own_engine:
                await engine.aclose()
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
