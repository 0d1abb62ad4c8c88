"""The `Store` interface and the records it keeps: jobs (status, per-phase progress), courses,
reports, call records, step checkpoints keyed by (job_id, step_key), idempotency keys (a unique
column on jobs) and the human-review queue.

Every method is async; the SQLite store runs its statements on one private thread, the
PostgreSQL store on a connection pool, so neither blocks the event loop. Money is `Decimal` in
memory and a decimal string in the store (never a float).
"""

from __future__ import annotations

import abc
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

__all__ = [
    "TERMINAL_STATUSES",
    "CachedResponse",
    "Checkpoint",
    "Job",
    "JobStatus",
    "PendingBatch",
    "ReviewItem",
    "ReviewStatus",
    "Store",
    "StoreBusy",
    "StoreConflict",
    "StoredCall",
]

#: "plan_review": stopped after phase 2 for an author (docs/authoring.md); not terminal, resumed
#: by `generate --job` or the service once the plan is approved.
JobStatus = Literal["queued", "running", "completed", "failed", "cancelled", "plan_review"]
#: A job in one of these will not run again by itself.
TERMINAL_STATUSES: frozenset[str] = frozenset({"completed", "failed", "cancelled"})
ReviewStatus = Literal["open", "approved", "edited", "regenerating", "regenerated"]


class StoreConflict(Exception):
    """A conditional write lost a race: `what` is "review" (the item is no longer in the status
    the write expected) or "course" (the course changed since its version was read)."""

    def __init__(self, what: Literal["review", "course"], message: str) -> None:
        self.what = what
        super().__init__(message)


class StoreBusy(Exception):
    """The store stayed busy (a pool with no free connection, a lost connection, a SQLite file
    locked by another process) through every retry for `patience_s` seconds; the last failure is
    the `__cause__`. Nothing of the operation was stored."""

    def __init__(self, patience_s: float, last: str) -> None:
        self.patience_s = patience_s
        super().__init__(f"the store stayed busy for {patience_s:g} s; last failure: {last}")


@dataclass(slots=True)
class Job:
    id: str
    course_id: str
    #: The analysis_result as submitted (JSON data).
    analysis: dict[str, Any]
    #: sha256 of the canonical analysis JSON: a resumed job must get the same input.
    input_digest: str
    status: JobStatus = "queued"
    #: {"phases": {phase: {"state", "done", "total"}}, "message": str}
    progress: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    #: approved | needs_review, once completed.
    course_status: str = ""
    #: How many times the job was started (1 + resumptions).
    runs: int = 0
    cancel_requested: bool = False
    idempotency_key: str | None = None
    #: The tenant that submitted the job ("" for the CLI and single-tenant services).
    tenant: str = ""
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_STATUSES


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A finished model call: enough to hand the pipeline the same answer again for free."""

    job_id: str
    step_key: str
    #: Digest of (model, request): a checkpoint replays only for the identical request.
    request_digest: str
    model: str
    text: str
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    cost_usd: Decimal
    cost_source: str
    latency_ms: float
    response_model: str = ""
    finish_reason: str = ""
    created_at: float = field(default_factory=time.time)
    #: Output tokens the model spent thinking (inside `output_tokens`), prompt tokens it wrote
    #: to the provider's prompt cache, and the upstream provider's own finish reason: kept so a
    #: replayed call's record says what the paid one said.
    reasoning_tokens: int = 0
    cache_write_tokens: int = 0
    native_finish_reason: str = ""


@dataclass(frozen=True, slots=True)
class CachedResponse:
    """A provider's answer kept for any later identical request (across jobs; the response
    cache, `cache/`), under a namespace (a tenant, or a config's digest) and a request key."""

    namespace: str
    key: str
    model: str
    text: str
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    #: What the answer cost when it was paid for (what a hit saves).
    cost_usd: Decimal
    latency_ms: float
    response_model: str = ""
    finish_reason: str = ""
    created_at: float = field(default_factory=time.time)
    #: Epoch seconds after which the entry is not served (None: never expires).
    expires_at: float | None = None
    #: As in `Checkpoint`: what the paid answer spent thinking and wrote to the prompt cache.
    reasoning_tokens: int = 0
    cache_write_tokens: int = 0
    native_finish_reason: str = ""


@dataclass(frozen=True, slots=True)
class PendingBatch:
    """A provider batch sent and not yet read back (batch mode): a process that dies while it
    runs finds it here and polls it again instead of paying for its requests twice."""

    id: str
    #: Our model id.
    model: str
    #: The batch's requests by custom id (a digest of the request and its draw).
    custom_ids: tuple[str, ...]
    created_at: float = field(default_factory=time.time)


@dataclass(frozen=True, slots=True)
class StoredCall:
    """One call record of one run of a job (the report's `calls` entry, as JSON data)."""

    job_id: str
    run: int
    seq: int
    step_key: str
    replayed: bool
    record: dict[str, Any]


@dataclass(slots=True)
class ReviewItem:
    id: str
    job_id: str
    #: Lesson id (e.g. "S1-L2") or "metadata".
    target: str
    reason: str
    gate: str = ""
    #: 0 (the gates were sure) .. 1 (a coin flip): the queue is ranked by it, highest first.
    uncertainty: float = 0.0
    status: ReviewStatus = "open"
    #: What the reviewer did: {"action", "note", "content"?, "by"?}.
    resolution: dict[str, Any] = field(default_factory=dict)
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)


class Store(abc.ABC):
    """Durable state of jobs. Open with `open_store(url)`, then `await store.init()`."""

    #: "sqlite" | "postgresql"
    dialect: str = ""

    @abc.abstractmethod
    async def init(self) -> None:
        """Connect and apply pending migrations (idempotent, safe to call from many processes)."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def schema_version(self) -> int: ...

    def serving(self, patience_s: float) -> Store:
        """This store for answering a request: the same connections, but a transient failure
        (a PostgreSQL pool with no free connection, a locked SQLite file) is tried for at most
        `patience_s` seconds before `StoreBusy`, where a job's own queries and writes keep trying
        for minutes. Close the store, not the view. A store that does not retry is its own view."""
        return self

    def pool_stats(self) -> dict[str, dict[str, int]]:
        """Each connection pool's counters by pool name, for `/metrics` (psycopg_pool's
        `get_stats()`: requests_num, requests_queued, requests_wait_ms, pool_size,
        pool_available, ...). A store without a pool has none."""
        return {}

    async def ping(self) -> None:
        """Raise unless the store answers a trivial query. For `/health`: a store with a pool
        answers it on a connection of its own, so the check never queues behind the jobs'
        writes (with 100 courses in flight it waited seconds for a pooled connection)."""
        await self.schema_version()

    # -- jobs ----------------------------------------------------------------------------------
    @abc.abstractmethod
    async def create_job(self, job: Job) -> tuple[Job, bool]:
        """Insert `job`; if its id or idempotency key is taken, return the existing job and False."""

    @abc.abstractmethod
    async def get_job(self, job_id: str) -> Job | None: ...

    @abc.abstractmethod
    async def find_job_by_key(self, idempotency_key: str, *, tenant: str = "") -> Job | None:
        """The tenant's job with that idempotency key (keys are scoped to the tenant)."""

    @abc.abstractmethod
    async def list_jobs(
        self, *, status: str | None = None, limit: int = 100, offset: int = 0, tenant: str | None = None
    ) -> list[Job]:
        """Newest first; only `tenant`'s jobs when it is given (None: every tenant's)."""

    @abc.abstractmethod
    async def update_job(self, job_id: str, **changes: Any) -> None:
        """Change any of: status, progress, error, course_status, runs, cancel_requested."""

    @abc.abstractmethod
    async def save_progress(self, progress: Mapping[str, Mapping[str, Any]]) -> None:
        """Job id -> its progress, for each job still running, in one transaction (a job that
        has finished keeps the progress its result saved)."""

    @abc.abstractmethod
    async def start_run(self, job_id: str) -> int:
        """Mark the job running and count the run; returns the run number (1 for the first)."""

    # -- what the service processes on one store share (docs/scaling.md) ----------------------
    @abc.abstractmethod
    async def claim_job(self, job_id: str, owner: str, *, until: float, now: float) -> bool:
        """Make `owner` (one service process) the one that runs the queued or running job, its
        claim lasting until `until`: True when the job had no owner, was `owner`'s already, or
        its owner's lease ran out before `now` (that process died); False otherwise (another
        live process runs it, or it is finished)."""

    @abc.abstractmethod
    async def renew_claims(self, owner: str, *, until: float) -> list[str]:
        """Extend every unfinished job `owner` claimed to `until`; returns those of them that
        another process was asked to cancel (`cancel_requested`)."""

    @abc.abstractmethod
    async def release_job(self, job_id: str, owner: str) -> None:
        """`owner` no longer runs the job (its run ended): any process may claim it again."""

    @abc.abstractmethod
    async def release_all(self, owner: str) -> int:
        """Release every job `owner` claimed (it is shutting down); returns how many."""

    @abc.abstractmethod
    async def claimable_jobs(self, *, now: float, limit: int = 500) -> list[str]:
        """Ids of queued or running jobs nobody holds a live claim on, oldest first."""

    @abc.abstractmethod
    async def job_claim(self, job_id: str) -> tuple[str, float] | None:
        """(owner, lease_until) of a job ("" and 0 when unclaimed); None for an unknown job."""

    @abc.abstractmethod
    async def claim_review(self, review_id: str, owner: str, *, until: float, now: float) -> bool:
        """As `claim_job`, for a review item being regenerated (status "regenerating"): True
        when `owner` now runs its regeneration, False when a live process does or it is not
        regenerating. `renew_claims` and `release_all` cover these claims too."""

    @abc.abstractmethod
    async def release_review(self, review_id: str, owner: str) -> None:
        """`owner` no longer regenerates the item (its regeneration ended)."""

    @abc.abstractmethod
    async def review_claim(self, review_id: str) -> tuple[str, float] | None:
        """(owner, lease_until) of a review item ("" and 0 when unclaimed); None if unknown."""

    @abc.abstractmethod
    async def put_session(self, digest: str, csrf: str, *, expires_at: float, now: float) -> None:
        """Keep a dashboard session (by the digest of its id, never the id) and drop expired ones."""

    @abc.abstractmethod
    async def get_session(self, digest: str, *, now: float) -> tuple[str, float] | None:
        """(csrf, expires_at) of a session that has not expired by `now`."""

    @abc.abstractmethod
    async def delete_session(self, digest: str) -> None: ...

    @abc.abstractmethod
    async def count_submission(self, tenant: str, *, now: float, window_s: float, limit: int) -> float | None:
        """Count one submission of `tenant` at `now` unless it already has `limit` in the last
        `window_s` seconds (atomically across processes): None when counted, else the seconds
        until the oldest of them leaves the window."""

    # -- results -------------------------------------------------------------------------------
    @abc.abstractmethod
    async def save_result(
        self,
        job_id: str,
        *,
        run: int,
        status: JobStatus,
        course: Mapping[str, Any] | None,
        report: Mapping[str, Any],
        calls: Sequence[Mapping[str, Any]],
        reviews: Sequence[ReviewItem] = (),
        error: str = "",
        course_status: str = "",
    ) -> None:
        """Write a run's course (if any), report, call records and review items, and the job's
        final status, in one transaction."""

    @abc.abstractmethod
    async def get_course(self, job_id: str) -> dict[str, Any] | None: ...

    @abc.abstractmethod
    async def get_course_version(self, job_id: str) -> tuple[dict[str, Any], int] | None:
        """The course and its version (0 when first saved, +1 at each change), read together."""

    @abc.abstractmethod
    async def update_course(
        self,
        job_id: str,
        course: Mapping[str, Any],
        *,
        course_status: str,
        expected_version: int | None = None,
    ) -> None:
        """Replace a completed job's course (a reviewer's edit or approval). With
        `expected_version`, only if the course is still at it, else `StoreConflict("course")`."""

    @abc.abstractmethod
    async def answer_review(
        self,
        review_id: str,
        *,
        expect_status: str,
        status: str,
        resolution: Mapping[str, Any],
        course: tuple[str, Mapping[str, Any], str, int] | None = None,
    ) -> None:
        """In one transaction: the item moves from `expect_status` to `status` (else
        `StoreConflict("review")`: another action won) and, with `course` = (job_id, course,
        course_status, expected_version), the course is replaced if still at that version (else
        `StoreConflict("course")`). Nothing is written when either condition fails."""

    @abc.abstractmethod
    async def save_revision(
        self,
        job_id: str,
        *,
        run: int,
        course: Mapping[str, Any],
        course_status: str,
        report: Mapping[str, Any],
        calls: Sequence[Mapping[str, Any]],
        review_id: str,
        review_status: str,
        review_reason: str,
        resolution: Mapping[str, Any],
        expected_version: int | None = None,
    ) -> None:
        """Write a reviewer-requested regeneration in one transaction: the course and report as
        they now stand, the regeneration's call records appended to run `run`, and the review
        item's new status, reason and resolution. The item must still be "regenerating" (else
        `StoreConflict("review")`) and, with `expected_version`, the course at that version
        (else `StoreConflict("course")`)."""

    @abc.abstractmethod
    async def get_report(self, job_id: str) -> dict[str, Any] | None: ...

    @abc.abstractmethod
    async def report_costs(self, job_ids: Sequence[str]) -> dict[str, tuple[float, float]]:
        """Job id -> (total_cost_usd, budget_usd) of each of these jobs that has a report, in one
        round trip (the dashboard's jobs page: not one whole report per row)."""

    @abc.abstractmethod
    async def tenant_spend(self, tenant: str, *, since: float) -> Decimal:
        """USD of the reports of `tenant`'s jobs saved since `since` (epoch seconds)."""

    @abc.abstractmethod
    async def list_calls(self, job_id: str) -> list[StoredCall]: ...

    # -- checkpoints ---------------------------------------------------------------------------
    @abc.abstractmethod
    async def put_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Write (or overwrite) the checkpoint of (job_id, step_key); durable when it returns."""

    @abc.abstractmethod
    async def load_checkpoints(self, job_id: str) -> dict[str, Checkpoint]: ...

    # -- response cache ------------------------------------------------------------------------
    @abc.abstractmethod
    async def get_cached_response(self, namespace: str, key: str, *, now: float) -> CachedResponse | None:
        """The entry of (namespace, key) unless it expired before `now`."""

    @abc.abstractmethod
    async def put_cached_response(self, entry: CachedResponse, *, max_entries: int) -> None:
        """Write (or overwrite) an entry, then keep at most `max_entries` of its namespace
        (the oldest go first) and drop its expired ones."""

    @abc.abstractmethod
    async def clear_cached_responses(self, namespace: str) -> int:
        """Drop every entry of a namespace; returns how many there were."""

    # -- provider batches ----------------------------------------------------------------------
    @abc.abstractmethod
    async def save_batch(self, batch: PendingBatch) -> None:
        """Record a batch just created at the provider; durable when it returns."""

    @abc.abstractmethod
    async def pending_batches(self) -> list[PendingBatch]:
        """Batches created and not yet closed, oldest first."""

    @abc.abstractmethod
    async def close_batch(self, batch_id: str) -> None:
        """The batch's results were read (or it failed or expired): forget it."""

    # -- review queue --------------------------------------------------------------------------
    @abc.abstractmethod
    async def list_reviews(
        self,
        *,
        status: str | None = "open",
        limit: int = 100,
        job_id: str | None = None,
        tenant: str | None = None,
    ) -> list[ReviewItem]:
        """Review items (of one job when `job_id` is given, of one tenant's jobs when `tenant`
        is) ranked by uncertainty, highest first."""

    @abc.abstractmethod
    async def get_review(self, review_id: str) -> ReviewItem | None: ...

    @abc.abstractmethod
    async def update_review(self, review_id: str, *, status: str, resolution: Mapping[str, Any]) -> None: ...
