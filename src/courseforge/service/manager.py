"""Runs the service's jobs in-process: a bounded number at once, each through the durable
`JobRunner` (every finished call checkpointed), progress fanned out to SSE listeners, and
unfinished jobs (queued, or running when the last process died) resumed at start-up.

Several service processes may share one store and act as one queue: a process runs a job only
after claiming it in the store (`Store.claim_job`) when a slot is free, renews its claims every
third of `service.job_lease_s`, and every `service.store_poll_s` takes queued jobs no process
has claimed and the jobs of a process whose lease ran out (it died). A job is never run by two
live processes at once; a cancel request made to another process reaches the owner at its next
renewal. Reviewer-requested regenerations are claimed, renewed and adopted the same way (two
processes starting together resume each one once).

Backpressure: a process accepts at most `service.max_queued_jobs` jobs waiting for a slot; a
submission past that raises `QueueFull` (the API answers 503 with Retry-After) before anything is
stored, rather than accepting work that would wait on a starved pool and slots for ever."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Sequence
from typing import Any

from ..config import Settings
from ..domain import AnalysisResult, Exercise, Report
from ..engine import Engine
from ..evals.shadow import ShadowRunner
from ..jobs import InProcessRunner, JobRunner, ProgressTracker, job_mode, new_job, revise_review
from ..jobs.progress import ProgressSaver
from ..pipeline import validate_analysis
from ..storage import Job, Store
from .admission import AdaptiveSlots
from .metrics import ServiceMetrics

__all__ = ["JobManager", "QueueFull"]

log = logging.getLogger("courseforge.service")


def _gone_from_this_host(owner: str) -> bool:
    """Whether the process named `owner` ("host:pid:nonce") ran on this host and has exited."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # alive, another user's
        return False
    return False


#: Seconds a refused submission's Idempotency-Key is taken to name no job without asking the
#: store again (its resends while the queue stays full).
ABSENT_KEY_S = 60.0


class QueueFull(Exception):
    """The process's queue of jobs waiting for a slot is full; nothing was stored."""

    def __init__(self, waiting: int, retry_after_s: int) -> None:
        self.waiting, self.retry_after_s = waiting, retry_after_s
        super().__init__(f"{waiting} jobs wait for a slot (service.max_queued_jobs)")


class JobManager:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        engine: Engine,
        metrics: ServiceMetrics,
        *,
        max_concurrent: int,
        lag_target_s: float | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.engine = engine
        self.metrics = metrics
        #: One progress writer for every job this process runs (one transaction per round).
        self.saver = ProgressSaver(store)
        self.runner: JobRunner = InProcessRunner(engine, store, saver=self.saver)
        #: Jobs submitted with mode "batch": the same engine and store, through provider batches
        #: shared by every batch job waiting in the same round.
        self.batch_runner: JobRunner = InProcessRunner(engine, store, batch=True, saver=self.saver)
        if settings.service.temporal_address:
            # The worker fleet generates; this process starts each workflow, follows it, stores
            # its result. The slots then bound workflows followed, not courses generated here.
            from ..distributed import TemporalJobRunner

            self.runner = TemporalJobRunner(settings, store)
            self.batch_runner = TemporalJobRunner(settings, store, batch=True)
            max_concurrent = max(max_concurrent, 1024)
            lag_target_s = None
        #: Jobs generated at once: `max_concurrent`, fewer while the event loop runs later than
        #: `lag_target_s` (fed by the service's loop-lag probe through `observe_lag`).
        self.slots = AdaptiveSlots(max_concurrent, target_s=lag_target_s)
        #: A share of finished jobs re-run under another config (docs/evals.md), or None.
        self.shadow = ShadowRunner(settings, store) if settings.service.shadow else None
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._trackers: dict[str, ProgressTracker] = {}
        self._listeners: dict[str, set[asyncio.Queue[dict[str, Any]]]] = {}
        self.running = 0
        #: This process, as the owner of the jobs it claims in the store.
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._lease_s = settings.service.job_lease_s
        self._keeper: asyncio.Task[None] | None = None
        #: Jobs this process claimed and runs now (the rest of `_tasks` wait for a slot).
        self._claimed: set[str] = set()
        #: Submissions past the queue check, not yet scheduled (their job is being stored).
        self._admitting = 0
        #: "tenant\0key" -> when a refused submission's Idempotency-Key named no stored job
        #: (strings and floats: a dict the garbage collector does not walk).
        self._absent_keys: dict[str, float] = {}
        #: Set when the first job of this process ends.
        self.first_finished = asyncio.Event()
        #: Mean seconds a job holds its slot (moving average), for Retry-After; None until one ends.
        self._job_s: float | None = None

    @property
    def queued(self) -> int:
        return len(self._tasks) - self.running

    async def start(self, *, adopt: bool = True) -> int:
        """Keep this process's claims alive from now on; with `adopt`, resume every unfinished
        job no live process holds, now and every `service.store_poll_s`. Returns how many
        were resumed now."""
        self._keeper = asyncio.create_task(self._keep(adopt), name="jobs:keeper")
        if not adopt:
            return 0
        resumed = await self._adopt(restarting=True)
        if resumed:
            log.info("resuming %d unfinished job(s) and regeneration(s)", resumed)
        return resumed

    async def _adopt(self, *, restarting: bool = False) -> int:
        """Schedule the jobs no live process holds (queued, or their owner died). At a restart
        also those claimed by a process of this host that is gone (a crash, `kill -9`): they
        need not wait for the dead claim's lease to run out."""
        adopted = 0
        ids = await self.store.claimable_jobs(now=time.time(), limit=500)
        if restarting:
            for job in await self.store.list_jobs(status="running", limit=100_000):
                claim = await self.store.job_claim(job.id)
                if claim is None or job.id in ids or not _gone_from_this_host(claim[0]):
                    continue
                until = time.time() + self._lease_s
                if await self.store.claim_job(job.id, self.owner, until=until, now=claim[1] + 1):
                    ids.append(job.id)
        for job_id in ids:
            if job_id in self._tasks:
                continue
            found = await self.store.get_job(job_id)
            if found is not None and not found.finished and self.schedule(found):
                adopted += 1
        return adopted + await self._adopt_revisions(restarting)

    async def _adopt_revisions(self, restarting: bool) -> int:
        """Claim and schedule the reviewer-requested regenerations no live process holds (as
        jobs: at a restart also those of a process of this host that is gone)."""
        adopted = 0
        for item in await self.store.list_reviews(status="regenerating", limit=100_000):
            if f"review:{item.id}" in self._tasks:
                continue
            claim = await self.store.review_claim(item.id)
            if claim is None:
                continue
            now = time.time()
            if restarting and claim[0] and _gone_from_this_host(claim[0]):
                now = max(now, claim[1] + 1)
            if await self.store.claim_review(item.id, self.owner, until=time.time() + self._lease_s, now=now):
                self.schedule_revision(item.id)
                adopted += 1
        return adopted

    async def _keep(self, adopt: bool) -> None:
        """Renew this process's claims every third of the lease, cancel the jobs another process
        was asked to cancel, and (with `adopt`) take up what nobody holds."""
        poll_s = self.settings.service.store_poll_s
        renewed = time.monotonic()
        while True:
            await asyncio.sleep(min(poll_s, self._lease_s / 3))
            try:
                if time.monotonic() - renewed >= self._lease_s / 3:
                    renewed = time.monotonic()
                    for job_id in await self.store.renew_claims(
                        self.owner, until=time.time() + self._lease_s
                    ):
                        task = self._tasks.get(job_id)
                        if task is not None:
                            task.cancel()
                if adopt:
                    await self._adopt()
            except Exception:  # the store is away for a moment; the next round tries again
                log.warning("could not renew or adopt jobs", exc_info=True)

    async def stop(self) -> None:
        """Stop running jobs without cancelling them: they stay resumable, and released, so
        another process on the store takes them at once."""
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(BaseException):
                await self._keeper
        tasks = list(self._tasks.values())
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(BaseException):
                await t
        await self.saver.aclose()
        with contextlib.suppress(Exception):
            await self.store.release_all(self.owner)
        if self.shadow is not None:
            await self.shadow.stop()

    async def submit(
        self,
        analysis: AnalysisResult,
        job_id: str,
        idempotency_key: str | None,
        *,
        mode: str = "normal",
        tenant: str = "",
        review_plan: bool = False,
        bank: Sequence[Exercise] = (),
    ) -> tuple[Job, bool]:
        """Store and schedule a new job (or return the one of its idempotency key). Raises
        `QueueFull`, having stored nothing, when `service.max_queued_jobs` jobs already wait."""
        self.check_room()
        self._admitting += 1
        try:
            job, created = await self.store.create_job(
                new_job(
                    job_id,
                    analysis,
                    idempotency_key=idempotency_key,
                    mode=mode,
                    tenant=tenant,
                    review_plan=review_plan,
                    bank=bank,
                )
            )
        finally:
            self._admitting -= 1
        if idempotency_key is not None:
            self._absent_keys.pop(f"{tenant}\x00{idempotency_key}", None)
        if created:
            self.metrics.jobs_submitted.inc()
            self.schedule(job)
        return job, created

    def known_absent(self, tenant: str, key: str) -> bool:
        """Whether this process found no job for `key` less than `ABSENT_KEY_S` ago and has not
        accepted it since (`note_absent`): a full queue refuses its resends without asking the
        store again. A job another process accepted meanwhile is answered once there is room."""
        seen = self._absent_keys.get(f"{tenant}\x00{key}")
        return seen is not None and time.monotonic() - seen <= ABSENT_KEY_S

    def note_absent(self, tenant: str, key: str) -> None:
        if len(self._absent_keys) >= 100_000:
            self._absent_keys.clear()
        self._absent_keys[f"{tenant}\x00{key}"] = time.monotonic()

    def check_room(self, *, count: bool = True) -> None:
        """Raise `QueueFull` when `service.max_queued_jobs` jobs already wait for a slot (with
        `count`, counted as a refusal): a check in memory, which a submission can make before
        any other work."""
        waiting = self.queued + self._admitting
        if waiting >= self.settings.service.max_queued_jobs:
            if count:
                self.metrics.jobs_refused.inc()
            raise QueueFull(waiting, self.retry_after_s())

    def retry_after_s(self) -> int:
        """Seconds until a slot is likely free: a job's mean time in its slot over the slots
        (5 s before any job ended), 1 to 60."""
        slots = self.slots.limit
        mean = self._job_s if self._job_s is not None else 5.0 * slots
        return max(1, min(60, round(mean / slots)))

    def observe_lag(self, lag_s: float) -> None:
        """How late the event loop woke the service's lag probe: moves the job slots."""
        self.slots.observe(lag_s)

    async def resume(self, job_id: str) -> None:
        """Run a job again (one whose plan was just approved), unless it is already running."""
        job = await self.store.get_job(job_id)
        if job is not None and job_id not in self._tasks:
            await self.store.update_job(job_id, status="queued")
            self.schedule(job)

    def schedule(self, job: Job) -> bool:
        """Run `job` in this process once it has a slot and its claim; False when it is
        already scheduled here, and left alone: the keeper's `_adopt` may find a job just
        submitted to this process (stored, not yet scheduled) and schedule it after `submit`
        has — two tasks of one owner would both win the claim and run the job twice."""
        if job.id in self._tasks:
            return False
        tracker = ProgressTracker(job.progress or None)
        job_id = job.id

        def publish(event: dict[str, Any]) -> None:
            self._publish(job_id, "progress", event)

        tracker.listeners.append(publish)
        self._trackers[job.id] = tracker
        self._tasks[job.id] = asyncio.create_task(self._run(job, tracker), name=f"job:{job.id}")
        return True

    async def _run(self, job: Job, tracker: ProgressTracker) -> None:
        try:
            async with self.slots:
                if not await self.store.claim_job(
                    job.id, self.owner, until=time.time() + self._lease_s, now=time.time()
                ):
                    return  # another live process runs it, or it ended while it waited here
                self._claimed.add(job.id)
                current = await self.store.get_job(job.id)
                if current is None or current.cancel_requested:
                    await self.store.update_job(job.id, status="cancelled")
                    self._finish(job.id, "cancelled")
                    return
                self.running += 1
                started = time.perf_counter()
                try:
                    analysis = validate_analysis(current.analysis)
                    runner = self.batch_runner if job_mode(current) == "batch" else self.runner
                    result = await runner.run(current, analysis=analysis, tracker=tracker)
                finally:
                    self.running -= 1
                took = time.perf_counter() - started
                self.metrics.job_seconds.observe(took)
                self._job_s = took if self._job_s is None else 0.9 * self._job_s + 0.1 * took
                self.metrics.observe_course(result.report)
                if self.shadow is not None:
                    self.shadow.offer(current, analysis, result)
                self._finish(
                    job.id, "completed" if result.course else "plan_review" if result.plan else "failed"
                )
        except asyncio.CancelledError:
            await asyncio.shield(self._cancelled(job.id))
            raise
        except Exception as exc:  # recorded on the job by the runner; the service carries on
            log.warning("job %s failed: %s", job.id, type(exc).__name__)
            with contextlib.suppress(Exception):
                await self.store.update_job(
                    job.id, status="failed", error=f"{type(exc).__name__}: {exc}"[:1000]
                )
            self._finish(job.id, "failed")
        finally:
            self._tasks.pop(job.id, None)
            self._trackers.pop(job.id, None)
            self._claimed.discard(job.id)
            with contextlib.suppress(Exception):
                await self.store.release_job(job.id, self.owner)

    # -- reviewer-requested regenerations -----------------------------------------------------
    def schedule_revision(self, review_id: str) -> None:
        """Regenerate the lesson of review item `review_id` (already "regenerating") in the
        background, in this process, through the same engine and a job slot."""
        key = f"review:{review_id}"
        if key not in self._tasks:
            self._tasks[key] = asyncio.create_task(self._revise(review_id, key), name=key)

    async def _revise(self, review_id: str, key: str) -> None:
        try:
            async with self.slots:
                if not await self.store.claim_review(
                    review_id, self.owner, until=time.time() + self._lease_s, now=time.time()
                ):
                    return  # another live process regenerates it, or it is no longer asked for
                self.running += 1
                try:
                    item = await revise_review(self.engine, self.store, review_id)
                finally:
                    self.running -= 1
                self.metrics.revisions.labels(item.status).inc()
        except asyncio.CancelledError:
            raise  # stays "regenerating": resumed at the next start, finished calls replayed
        except Exception as exc:
            log.warning("regeneration for review %s failed: %s", review_id, type(exc).__name__)
            with contextlib.suppress(Exception):
                current = await self.store.get_review(review_id)
                if current is not None and current.status == "regenerating":
                    await self.store.update_review(
                        review_id,
                        status="open",
                        resolution={**current.resolution, "error": f"{type(exc).__name__}: {exc}"[:500]},
                    )
            self.metrics.revisions.labels("error").inc()
        finally:
            self._tasks.pop(key, None)
            with contextlib.suppress(Exception):
                await self.store.release_review(review_id, self.owner)

    async def _cancelled(self, job_id: str) -> None:
        """After the job's task was cancelled: a cancel request ends the job "cancelled" (one
        still waiting for a slot never ran, so nothing else would), its run's spend counted in
        the metrics; a shutdown leaves it resumable."""
        final = await self.store.get_job(job_id)
        if final is None or not (final.cancel_requested or final.status == "cancelled"):
            return
        if final.status != "cancelled":
            await self.store.update_job(job_id, status="cancelled")
        report = await self.store.get_report(job_id) if final.status == "cancelled" else None
        if report is not None and report.get("status") == "cancelled":
            self.metrics.observe_course(Report.model_validate(report))
        self._finish(job_id, "cancelled")

    def _finish(self, job_id: str, status: str) -> None:
        self.first_finished.set()
        self.metrics.jobs_finished.labels(status).inc()
        self._publish(job_id, "status", {"status": status})

    async def cancel(self, job_id: str) -> Job | None:
        job = await self.store.get_job(job_id)
        if job is None or job.finished:
            return job
        await self.store.update_job(job_id, cancel_requested=True)
        task = self._tasks.get(job_id)
        if job_id not in self._claimed and await self._held_elsewhere(job_id):
            # Another process runs it: it sees the request at its next renewal and ends the job
            # there. A task of ours still waiting for a slot finds the job taken and ends quietly.
            return await self.store.get_job(job_id)
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(asyncio.shield(task), 10)
        else:
            if job.status == "plan_review":  # its Temporal workflow may still wait for the plan
                await self.runner.discard(job)
            await self.store.update_job(job_id, status="cancelled")
            self._finish(job_id, "cancelled")
        return await self.store.get_job(job_id)

    async def _held_elsewhere(self, job_id: str) -> bool:
        claim = await self.store.job_claim(job_id)
        return claim is not None and claim[0] not in ("", self.owner) and claim[1] > time.time()

    def runs_here(self, job_id: str) -> bool:
        """Whether this process runs the job now (its events come from here, not the store)."""
        return job_id in self._claimed

    # -- server-sent events --------------------------------------------------------------------
    def subscribe(self, job_id: str) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=1000)
        self._listeners.setdefault(job_id, set()).add(queue)
        return queue

    def unsubscribe(self, job_id: str, queue: asyncio.Queue[dict[str, Any]]) -> None:
        listeners = self._listeners.get(job_id)
        if listeners:
            listeners.discard(queue)
            if not listeners:
                self._listeners.pop(job_id, None)

    def _publish(self, job_id: str, kind: str, data: dict[str, Any]) -> None:
        for queue in list(self._listeners.get(job_id, ())):
            with contextlib.suppress(asyncio.QueueFull):  # a stalled client loses events, not the job
                queue.put_nowait({"event": kind, "data": data})
