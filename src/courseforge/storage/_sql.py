"""The SQL both stores share: versioned migrations and every query, written once with `?`
placeholders. A backend supplies three primitives (fetch, a transaction of statements, and the
migration lock); the PostgreSQL one turns `?` into `%s`.

Migrations are a list of (version, statements); `schema_migrations` records which ran. Add a
new version at the end, never edit an applied one.
"""

from __future__ import annotations

import abc
import copy
import dataclasses
import json
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any, ClassVar, Self, TypeVar

from ._base import CachedResponse, Checkpoint, Job, PendingBatch, ReviewItem, StoreConflict, StoredCall
from ._retry import retrying
from ._shared import SharedStateSQL, Statement

__all__ = ["MIGRATIONS", "SQLStore", "Statement"]

#: {ts}: epoch-seconds column type, {autoid}: auto-increment primary key.
MIGRATIONS: list[tuple[int, list[str]]] = [
    (
        1,
        [
            """CREATE TABLE jobs (
                id TEXT PRIMARY KEY,
                course_id TEXT NOT NULL,
                analysis TEXT NOT NULL,
                input_digest TEXT NOT NULL,
                status TEXT NOT NULL,
                progress TEXT NOT NULL DEFAULT '{{}}',
                error TEXT NOT NULL DEFAULT '',
                course_status TEXT NOT NULL DEFAULT '',
                runs INTEGER NOT NULL DEFAULT 0,
                cancel_requested INTEGER NOT NULL DEFAULT 0,
                idempotency_key TEXT UNIQUE,
                created_at {ts} NOT NULL,
                updated_at {ts} NOT NULL
            )""",
            "CREATE INDEX jobs_status_created ON jobs (status, created_at)",
            "CREATE INDEX jobs_created ON jobs (created_at)",
            """CREATE TABLE checkpoints (
                job_id TEXT NOT NULL,
                step_key TEXT NOT NULL,
                request_digest TEXT NOT NULL,
                model TEXT NOT NULL,
                text TEXT NOT NULL,
                input_tokens INTEGER NOT NULL,
                output_tokens INTEGER NOT NULL,
                cached_tokens INTEGER NOT NULL,
                cost_usd TEXT NOT NULL,
                cost_source TEXT NOT NULL,
                latency_ms {ts} NOT NULL,
                response_model TEXT NOT NULL DEFAULT '',
                finish_reason TEXT NOT NULL DEFAULT '',
                created_at {ts} NOT NULL,
                PRIMARY KEY (job_id, step_key)
            )""",
            """CREATE TABLE courses (
                job_id TEXT PRIMARY KEY,
                body TEXT NOT NULL,
                created_at {ts} NOT NULL
            )""",
            """CREATE TABLE reports (
                job_id TEXT PRIMARY KEY,
                body TEXT NOT NULL,
                created_at {ts} NOT NULL
            )""",
            """CREATE TABLE call_records (
                id {autoid},
                job_id TEXT NOT NULL,
                run INTEGER NOT NULL,
                seq INTEGER NOT NULL,
                step_key TEXT NOT NULL,
                replayed INTEGER NOT NULL,
                body TEXT NOT NULL
            )""",
            "CREATE INDEX call_records_job ON call_records (job_id, run, seq)",
            """CREATE TABLE review_items (
                id TEXT PRIMARY KEY,
                job_id TEXT NOT NULL,
                target TEXT NOT NULL,
                reason TEXT NOT NULL,
                gate TEXT NOT NULL DEFAULT '',
                uncertainty {ts} NOT NULL,
                status TEXT NOT NULL,
                resolution TEXT NOT NULL DEFAULT '{{}}',
                created_at {ts} NOT NULL,
                updated_at {ts} NOT NULL
            )""",
            "CREATE INDEX review_items_status ON review_items (status, uncertainty)",
        ],
    ),
    (
        2,
        [
            # The response cache (issue 14): answers kept across jobs, per namespace.
            """CREATE TABLE response_cache (
                namespace TEXT NOT NULL,
                key TEXT NOT NULL,
                model TEXT NOT NULL,
                text TEXT NOT NULL,
                input_tokens INTEGER NOT NULL,
                output_tokens INTEGER NOT NULL,
                cached_tokens INTEGER NOT NULL,
                cost_usd TEXT NOT NULL,
                latency_ms {ts} NOT NULL,
                response_model TEXT NOT NULL DEFAULT '',
                finish_reason TEXT NOT NULL DEFAULT '',
                created_at {ts} NOT NULL,
                expires_at {ts},
                PRIMARY KEY (namespace, key)
            )""",
            "CREATE INDEX response_cache_age ON response_cache (namespace, created_at)",
            # Provider batches in flight (batch mode), so a restarted process polls them again.
            """CREATE TABLE pending_batches (
                id TEXT PRIMARY KEY,
                model TEXT NOT NULL,
                custom_ids TEXT NOT NULL,
                created_at {ts} NOT NULL
            )""",
        ],
    ),
    (
        3,
        [
            # A course's version: +1 at every change, for conditional writes and the ETag.
            "ALTER TABLE courses ADD COLUMN version INTEGER NOT NULL DEFAULT 0",
            # The tenant that owns the job; '' for the CLI and single-tenant services.
            "ALTER TABLE jobs ADD COLUMN tenant TEXT NOT NULL DEFAULT ''",
            "CREATE INDEX jobs_tenant_created ON jobs (tenant, created_at)",
            "CREATE INDEX review_items_job ON review_items (job_id)",
        ],
    ),
    (
        4,
        [
            # Issue 23: a replayed call (or a cache hit) reports the reasoning tokens, cache
            # writes and upstream finish reason of the answer that was paid for.
            "ALTER TABLE checkpoints ADD COLUMN reasoning_tokens INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE checkpoints ADD COLUMN cache_write_tokens INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE checkpoints ADD COLUMN native_finish_reason TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE response_cache ADD COLUMN reasoning_tokens INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE response_cache ADD COLUMN cache_write_tokens INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE response_cache ADD COLUMN native_finish_reason TEXT NOT NULL DEFAULT ''",
        ],
    ),
    (
        5,
        [
            # Several service processes on one store (docs/scaling.md): the process that runs a
            # job and until when its claim holds; dashboard sessions; tenants' recent submissions.
            "ALTER TABLE jobs ADD COLUMN owner TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE jobs ADD COLUMN lease_until {ts} NOT NULL DEFAULT 0",
            "CREATE INDEX jobs_owner ON jobs (owner)",
            """CREATE TABLE sessions (
                id_digest TEXT PRIMARY KEY,
                csrf TEXT NOT NULL,
                expires_at {ts} NOT NULL
            )""",
            "CREATE INDEX sessions_expiry ON sessions (expires_at)",
            """CREATE TABLE tenant_submissions (
                id {autoid},
                tenant TEXT NOT NULL,
                at {ts} NOT NULL
            )""",
            "CREATE INDEX tenant_submissions_at ON tenant_submissions (tenant, at)",
            "CREATE TABLE tenant_locks (tenant TEXT PRIMARY KEY, touched {ts} NOT NULL)",
        ],
    ),
    (
        6,
        [
            # A reviewer-requested regeneration is claimed like a job (one process runs it; a
            # second process starting at the same time does not resume it too).
            "ALTER TABLE review_items ADD COLUMN owner TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE review_items ADD COLUMN lease_until {ts} NOT NULL DEFAULT 0",
        ],
    ),
]

_JOB_COLUMNS = (
    "id, course_id, analysis, input_digest, status, progress, error, course_status, runs, "
    "cancel_requested, idempotency_key, created_at, updated_at, tenant"
)
_CHECKPOINT_COLUMNS = (
    "job_id, step_key, request_digest, model, text, input_tokens, output_tokens, cached_tokens, "
    "cost_usd, cost_source, latency_ms, response_model, finish_reason, created_at, "
    "reasoning_tokens, cache_write_tokens, native_finish_reason"
)
_CACHE_COLUMNS = (
    "namespace, key, model, text, input_tokens, output_tokens, cached_tokens, cost_usd, latency_ms, "
    "response_model, finish_reason, created_at, expires_at, reasoning_tokens, cache_write_tokens, "
    "native_finish_reason"
)
#: How a column's value becomes its field's type (by the field's annotation); others as read.
_CONVERT: dict[str, Any] = {"int": int, "float": float, "Decimal": Decimal}
_Row = TypeVar("_Row", Checkpoint, CachedResponse)
T = TypeVar("T")


def _from_row(cls: type[_Row], columns: str, row: Sequence[Any]) -> _Row:
    """A row selected as `columns` as a `cls` dataclass, each value converted to its field's
    type (the drivers hand numbers back as str, int, float or Decimal); NULL stays None."""
    kinds = {f.name: str(f.type) for f in dataclasses.fields(cls)}
    values = {}
    for name, value in zip((c.strip() for c in columns.split(",")), row, strict=True):
        convert = _CONVERT.get(kinds[name].split("|")[0].strip())
        values[name] = value if value is None or convert is None else convert(value)
    return cls(**values)


_REVIEW_COLUMNS = "id, job_id, target, reason, gate, uncertainty, status, resolution, created_at, updated_at"
_UPDATABLE = {"status", "progress", "error", "course_status", "runs", "cancel_requested"}


def _stored_key(tenant: str, key: str | None) -> str | None:
    """Idempotency keys are unique per tenant: a tenant's key is stored after its name (keys
    are visible ASCII, so the space cannot be part of one)."""
    if key is None:
        return None
    return f"{tenant} {key}" if tenant else key


def _job(row: Sequence[Any]) -> Job:
    tenant = str(row[13])
    key = row[10]
    if tenant and key is not None:
        key = key.removeprefix(f"{tenant} ")
    return Job(
        id=row[0],
        course_id=row[1],
        analysis=json.loads(row[2]),
        input_digest=row[3],
        status=row[4],
        progress=json.loads(row[5]),
        error=row[6],
        course_status=row[7],
        runs=int(row[8]),
        cancel_requested=bool(row[9]),
        idempotency_key=key,
        created_at=float(row[11]),
        updated_at=float(row[12]),
        tenant=tenant,
    )


def _review(row: Sequence[Any]) -> ReviewItem:
    return ReviewItem(
        id=row[0],
        job_id=row[1],
        target=row[2],
        reason=row[3],
        gate=row[4],
        uncertainty=float(row[5]),
        status=row[6],
        resolution=json.loads(row[7]),
        created_at=float(row[8]),
        updated_at=float(row[9]),
    )


def _dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str)


class SQLStore(SharedStateSQL):
    """Every query of the store; subclasses provide the connection."""

    #: Column types substituted into the migrations.
    _types: ClassVar[Mapping[str, str]] = {}
    #: Seconds a query or write keeps trying through transient failures (`_retry.py`).
    _retry_s: float
    _sleep: Callable[[float], Awaitable[None]]
    #: Transient failures tried again so far, by kind ("wait", "once"): for tests and logs.
    retried: dict[str, int]
    #: The store whose connections this one uses: itself, or the store a `serving` view was
    #: made from.
    _root: Self

    def _set_patience(self: Self, retry_s: float, sleep: Callable[[float], Awaitable[None]]) -> None:
        """For a backend's constructor: how long its queries and writes keep trying."""
        self._retry_s, self._sleep = retry_s, sleep
        self.retried = {"wait": 0, "once": 0}
        self._root = self

    @staticmethod
    @abc.abstractmethod
    def _transient(exc: BaseException) -> str:
        """How an error of this backend passes: "wait", "once" or "" (`_retry.Transient`)."""

    async def _retrying(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """`attempt()`, tried again through this backend's transient failures (`_retry.py`)."""
        return await retrying(
            attempt,
            transient=self._transient,
            patience_s=self._retry_s,
            sleep=self._sleep,
            retried=self.retried,
        )

    def serving(self, patience_s: float) -> Self:
        """A copy that shares this store's connections (a backend reaches them through the
        store it was opened as) and gives up sooner; see `Store.serving`."""
        view = copy.copy(self)
        view._retry_s = min(self._retry_s, patience_s)
        return view

    # -- primitives (backend; `_fetch` and `_transaction` declared in `SharedStateSQL`) -------
    @abc.abstractmethod
    async def _migrate(self, pending: Sequence[tuple[int, list[str]]]) -> None:
        """Apply the migrations not yet applied, holding a lock other processes respect."""

    @staticmethod
    def _check(index: int, rowcount: int, require: Mapping[int, str] | None) -> None:
        """For backends, after each statement: raise when a required one changed nothing."""
        if require and index in require and rowcount == 0:
            what = require[index]
            message = (
                "the review item is no longer in the status this action expected"
                if what == "review"
                else "the course changed since it was read"
            )
            raise StoreConflict("review" if what == "review" else "course", message)

    # -- migrations ----------------------------------------------------------------------------
    def _migration_sql(self) -> list[tuple[int, list[str]]]:
        return [(v, [s.format(**self._types) for s in stmts]) for v, stmts in MIGRATIONS]

    async def schema_version(self) -> int:
        rows = await self._fetch("SELECT MAX(version) FROM schema_migrations")
        return int(rows[0][0] or 0) if rows else 0

    async def init(self) -> None:
        await self._migrate(self._migration_sql())

    # -- jobs ----------------------------------------------------------------------------------
    async def create_job(self, job: Job) -> tuple[Job, bool]:
        (inserted,) = await self._transaction(
            [
                (
                    f"INSERT INTO jobs ({_JOB_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING",
                    (
                        job.id,
                        job.course_id,
                        _dumps(job.analysis),
                        job.input_digest,
                        job.status,
                        _dumps(job.progress),
                        job.error,
                        job.course_status,
                        job.runs,
                        int(job.cancel_requested),
                        _stored_key(job.tenant, job.idempotency_key),
                        job.created_at,
                        job.updated_at,
                        job.tenant,
                    ),
                )
            ]
        )
        if inserted:
            return job, True
        existing = (
            await self.find_job_by_key(job.idempotency_key, tenant=job.tenant)
            if job.idempotency_key
            else None
        )
        existing = existing or await self.get_job(job.id)
        if existing is None:  # lost a race with a delete; there are no deletes, so unreachable
            raise RuntimeError(f"job {job.id} conflicts but cannot be read")
        return existing, False

    async def get_job(self, job_id: str) -> Job | None:
        rows = await self._fetch(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,))
        return _job(rows[0]) if rows else None

    async def find_job_by_key(self, idempotency_key: str, *, tenant: str = "") -> Job | None:
        rows = await self._fetch(
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE idempotency_key = ? AND tenant = ?",
            (_stored_key(tenant, idempotency_key), tenant),
        )
        return _job(rows[0]) if rows else None

    async def list_jobs(
        self, *, status: str | None = None, limit: int = 100, offset: int = 0, tenant: str | None = None
    ) -> list[Job]:
        conditions = [
            (sql, v) for sql, v in (("status = ?", status), ("tenant = ?", tenant)) if v is not None
        ]
        where = ("WHERE " + " AND ".join(sql for sql, _ in conditions)) if conditions else ""
        params = [v for _, v in conditions]
        rows = await self._fetch(
            f"SELECT {_JOB_COLUMNS} FROM jobs {where} ORDER BY created_at DESC, id LIMIT ? OFFSET ?",
            (*params, int(limit), int(offset)),
        )
        return [_job(r) for r in rows]

    async def update_job(self, job_id: str, **changes: Any) -> None:
        unknown = set(changes) - _UPDATABLE
        if unknown:
            raise ValueError(f"cannot update job fields {sorted(unknown)}")
        sets, params = [], []
        for name, value in changes.items():
            sets.append(f"{name} = ?")
            if name == "progress":
                value = _dumps(value)
            elif name == "cancel_requested":
                value = int(bool(value))
            params.append(value)
        sets.append("updated_at = ?")
        params += [time.time(), job_id]
        await self._transaction([(f"UPDATE jobs SET {', '.join(sets)} WHERE id = ?", params)])

    async def save_progress(self, progress: Mapping[str, Mapping[str, Any]]) -> None:
        if not progress:
            return
        now = time.time()
        # In the order of the jobs' ids, as `renew_claims` locks them: two transactions that
        # each update many job rows in different orders deadlock on PostgreSQL.
        await self._transaction(
            [
                (
                    "UPDATE jobs SET progress = ?, updated_at = ? WHERE id = ? AND status = 'running'",
                    (_dumps(progress[job_id]), now, job_id),
                )
                for job_id in sorted(progress)
            ]
        )

    async def start_run(self, job_id: str) -> int:
        await self._transaction(
            [
                (
                    "UPDATE jobs SET status = 'running', runs = runs + 1, error = '', updated_at = ? WHERE id = ?",
                    (time.time(), job_id),
                )
            ]
        )
        rows = await self._fetch("SELECT runs FROM jobs WHERE id = ?", (job_id,))
        return int(rows[0][0]) if rows else 0

    # -- results -------------------------------------------------------------------------------
    async def save_result(
        self,
        job_id: str,
        *,
        run: int,
        status: str,
        course: Mapping[str, Any] | None,
        report: Mapping[str, Any],
        calls: Sequence[Mapping[str, Any]],
        reviews: Sequence[ReviewItem] = (),
        error: str = "",
        course_status: str = "",
    ) -> None:
        now = time.time()
        statements: list[Statement] = []
        if course is not None:
            statements.append(
                (
                    "INSERT INTO courses (job_id, body, created_at) VALUES (?,?,?) "
                    "ON CONFLICT (job_id) DO UPDATE SET body = excluded.body, created_at = excluded.created_at, "
                    "version = courses.version + 1",
                    (job_id, _dumps(course), now),
                )
            )
        statements.append(
            (
                "INSERT INTO reports (job_id, body, created_at) VALUES (?,?,?) "
                "ON CONFLICT (job_id) DO UPDATE SET body = excluded.body, created_at = excluded.created_at",
                (job_id, _dumps(report), now),
            )
        )
        statements.append(("DELETE FROM call_records WHERE job_id = ? AND run = ?", (job_id, run)))
        for seq, call in enumerate(calls):
            step_key = f"{call.get('phase')}/{call.get('task')}/{call.get('attempt')}/{call.get('tier')}"
            statements.append(
                (
                    "INSERT INTO call_records (job_id, run, seq, step_key, replayed, body) VALUES (?,?,?,?,?,?)",
                    (job_id, run, seq, step_key, int(bool(call.get("replayed"))), _dumps(call)),
                )
            )
        statements.append(("DELETE FROM review_items WHERE job_id = ? AND status = 'open'", (job_id,)))
        for item in reviews:
            statements.append(
                (
                    f"INSERT INTO review_items ({_REVIEW_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?) "
                    "ON CONFLICT (id) DO NOTHING",
                    (
                        item.id,
                        item.job_id,
                        item.target,
                        item.reason,
                        item.gate,
                        item.uncertainty,
                        item.status,
                        _dumps(item.resolution),
                        item.created_at,
                        item.updated_at,
                    ),
                )
            )
        statements.append(
            (
                "UPDATE jobs SET status = ?, error = ?, course_status = ?, updated_at = ? WHERE id = ?",
                (status, error, course_status, now, job_id),
            )
        )
        await self._transaction(statements)

    async def get_course(self, job_id: str) -> dict[str, Any] | None:
        rows = await self._fetch("SELECT body FROM courses WHERE job_id = ?", (job_id,))
        return dict(json.loads(rows[0][0])) if rows else None

    async def get_course_version(self, job_id: str) -> tuple[dict[str, Any], int] | None:
        rows = await self._fetch("SELECT body, version FROM courses WHERE job_id = ?", (job_id,))
        return (dict(json.loads(rows[0][0])), int(rows[0][1])) if rows else None

    @staticmethod
    def _course_statements(
        job_id: str, course: Mapping[str, Any], course_status: str, expected_version: int | None
    ) -> list[Statement]:
        """Replace the course (only at `expected_version`, when given) and the job's status."""
        if expected_version is None:
            update: Statement = (
                "UPDATE courses SET body = ?, version = version + 1 WHERE job_id = ?",
                (_dumps(course), job_id),
            )
        else:
            update = (
                "UPDATE courses SET body = ?, version = version + 1 WHERE job_id = ? AND version = ?",
                (_dumps(course), job_id, expected_version),
            )
        return [
            update,
            (
                "UPDATE jobs SET course_status = ?, updated_at = ? WHERE id = ?",
                (course_status, time.time(), job_id),
            ),
        ]

    async def update_course(
        self,
        job_id: str,
        course: Mapping[str, Any],
        *,
        course_status: str,
        expected_version: int | None = None,
    ) -> None:
        statements = self._course_statements(job_id, course, course_status, expected_version)
        await self._transaction(statements, require={0: "course"} if expected_version is not None else None)

    async def answer_review(
        self,
        review_id: str,
        *,
        expect_status: str,
        status: str,
        resolution: Mapping[str, Any],
        course: tuple[str, Mapping[str, Any], str, int] | None = None,
    ) -> None:
        statements: list[Statement] = [
            (
                "UPDATE review_items SET status = ?, resolution = ?, updated_at = ? WHERE id = ? AND status = ?",
                (status, _dumps(dict(resolution)), time.time(), review_id, expect_status),
            )
        ]
        require = {0: "review"}
        if course is not None:
            job_id, body, course_status, version = course
            statements += self._course_statements(job_id, body, course_status, version)
            require[1] = "course"
        await self._transaction(statements, require=require)

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
        now = time.time()
        statements: list[Statement] = [
            (
                "UPDATE review_items SET status = ?, reason = ?, resolution = ?, updated_at = ? "
                "WHERE id = ? AND status = 'regenerating'",
                (review_status, review_reason, _dumps(dict(resolution)), now, review_id),
            ),
            *self._course_statements(job_id, course, course_status, expected_version),
            ("UPDATE reports SET body = ? WHERE job_id = ?", (_dumps(report), job_id)),
        ]
        require = {0: "review"}
        if expected_version is not None:
            require[1] = "course"
        for call in calls:
            step_key = f"{call.get('phase')}/{call.get('task')}/{call.get('attempt')}/{call.get('tier')}"
            statements.append(
                (
                    "INSERT INTO call_records (job_id, run, seq, step_key, replayed, body) "
                    "SELECT ?, ?, COALESCE(MAX(seq), -1) + 1, ?, ?, ? FROM call_records "
                    "WHERE job_id = ? AND run = ?",
                    (job_id, run, step_key, int(bool(call.get("replayed"))), _dumps(call), job_id, run),
                )
            )
        await self._transaction(statements, require=require)

    async def get_report(self, job_id: str) -> dict[str, Any] | None:
        rows = await self._fetch("SELECT body FROM reports WHERE job_id = ?", (job_id,))
        return dict(json.loads(rows[0][0])) if rows else None

    async def report_costs(self, job_ids: Sequence[str]) -> dict[str, tuple[float, float]]:
        if not job_ids:
            return {}
        field = "json_extract(body, '$.{0}')" if self.dialect == "sqlite" else "(body::json)->>'{0}'"
        rows = await self._fetch(
            f"SELECT job_id, {field.format('total_cost_usd')}, {field.format('budget_usd')} "
            f"FROM reports WHERE job_id IN ({','.join('?' * len(job_ids))})",
            tuple(job_ids),
        )
        return {str(r[0]): (float(r[1] or 0), float(r[2] or 0)) for r in rows}

    async def tenant_spend(self, tenant: str, *, since: float) -> Decimal:
        rows = await self._fetch(
            "SELECT r.body FROM reports r JOIN jobs j ON j.id = r.job_id WHERE j.tenant = ? AND r.created_at >= ?",
            (tenant, since),
        )
        return sum((Decimal(str(json.loads(r[0]).get("total_cost_usd") or 0)) for r in rows), Decimal(0))

    async def list_calls(self, job_id: str) -> list[StoredCall]:
        rows = await self._fetch(
            "SELECT job_id, run, seq, step_key, replayed, body FROM call_records WHERE job_id = ? ORDER BY run, seq",
            (job_id,),
        )
        return [StoredCall(r[0], int(r[1]), int(r[2]), r[3], bool(r[4]), json.loads(r[5])) for r in rows]

    # -- checkpoints ---------------------------------------------------------------------------
    async def put_checkpoint(self, checkpoint: Checkpoint) -> None:
        c = checkpoint
        await self._transaction(
            [
                (
                    f"INSERT INTO checkpoints ({_CHECKPOINT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
                    "ON CONFLICT (job_id, step_key) DO UPDATE SET request_digest = excluded.request_digest, "
                    "model = excluded.model, text = excluded.text, input_tokens = excluded.input_tokens, "
                    "output_tokens = excluded.output_tokens, cached_tokens = excluded.cached_tokens, "
                    "cost_usd = excluded.cost_usd, cost_source = excluded.cost_source, "
                    "latency_ms = excluded.latency_ms, response_model = excluded.response_model, "
                    "finish_reason = excluded.finish_reason, created_at = excluded.created_at, "
                    "reasoning_tokens = excluded.reasoning_tokens, "
                    "cache_write_tokens = excluded.cache_write_tokens, "
                    "native_finish_reason = excluded.native_finish_reason",
                    (
                        c.job_id,
                        c.step_key,
                        c.request_digest,
                        c.model,
                        c.text,
                        c.input_tokens,
                        c.output_tokens,
                        c.cached_tokens,
                        str(c.cost_usd),
                        c.cost_source,
                        c.latency_ms,
                        c.response_model,
                        c.finish_reason,
                        c.created_at,
                        c.reasoning_tokens,
                        c.cache_write_tokens,
                        c.native_finish_reason,
                    ),
                )
            ]
        )

    async def load_checkpoints(self, job_id: str) -> dict[str, Checkpoint]:
        rows = await self._fetch(f"SELECT {_CHECKPOINT_COLUMNS} FROM checkpoints WHERE job_id = ?", (job_id,))
        return {r[1]: _from_row(Checkpoint, _CHECKPOINT_COLUMNS, r) for r in rows}

    # -- response cache ------------------------------------------------------------------------
    async def get_cached_response(self, namespace: str, key: str, *, now: float) -> CachedResponse | None:
        rows = await self._fetch(
            f"SELECT {_CACHE_COLUMNS} FROM response_cache WHERE namespace = ? AND key = ? "
            "AND (expires_at IS NULL OR expires_at > ?)",
            (namespace, key, now),
        )
        if not rows:
            return None
        return _from_row(CachedResponse, _CACHE_COLUMNS, rows[0])

    async def put_cached_response(self, entry: CachedResponse, *, max_entries: int) -> None:
        e = entry
        await self._transaction(
            [
                (
                    f"INSERT INTO response_cache ({_CACHE_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
                    "ON CONFLICT (namespace, key) DO UPDATE SET model = excluded.model, "
                    "text = excluded.text, input_tokens = excluded.input_tokens, "
                    "output_tokens = excluded.output_tokens, cached_tokens = excluded.cached_tokens, "
                    "cost_usd = excluded.cost_usd, latency_ms = excluded.latency_ms, "
                    "response_model = excluded.response_model, finish_reason = excluded.finish_reason, "
                    "created_at = excluded.created_at, expires_at = excluded.expires_at, "
                    "reasoning_tokens = excluded.reasoning_tokens, "
                    "cache_write_tokens = excluded.cache_write_tokens, "
                    "native_finish_reason = excluded.native_finish_reason",
                    (
                        e.namespace,
                        e.key,
                        e.model,
                        e.text,
                        e.input_tokens,
                        e.output_tokens,
                        e.cached_tokens,
                        str(e.cost_usd),
                        e.latency_ms,
                        e.response_model,
                        e.finish_reason,
                        e.created_at,
                        e.expires_at,
                        e.reasoning_tokens,
                        e.cache_write_tokens,
                        e.native_finish_reason,
                    ),
                ),
                (
                    "DELETE FROM response_cache WHERE namespace = ? AND expires_at IS NOT NULL "
                    "AND expires_at <= ?",
                    (e.namespace, e.created_at),
                ),
                (
                    "DELETE FROM response_cache WHERE namespace = ? AND key IN (SELECT key FROM "
                    "response_cache WHERE namespace = ? ORDER BY created_at DESC, key LIMIT 9223372036854775807 OFFSET ?)",
                    (e.namespace, e.namespace, int(max_entries)),
                ),
            ]
        )

    async def clear_cached_responses(self, namespace: str) -> int:
        (deleted,) = await self._transaction(
            [("DELETE FROM response_cache WHERE namespace = ?", (namespace,))]
        )
        return deleted

    # -- provider batches ----------------------------------------------------------------------
    async def save_batch(self, batch: PendingBatch) -> None:
        await self._transaction(
            [
                (
                    "INSERT INTO pending_batches (id, model, custom_ids, created_at) VALUES (?,?,?,?) "
                    "ON CONFLICT (id) DO NOTHING",
                    (batch.id, batch.model, _dumps(list(batch.custom_ids)), batch.created_at),
                )
            ]
        )

    async def pending_batches(self) -> list[PendingBatch]:
        rows = await self._fetch(
            "SELECT id, model, custom_ids, created_at FROM pending_batches ORDER BY created_at, id"
        )
        return [PendingBatch(r[0], r[1], tuple(json.loads(r[2])), float(r[3])) for r in rows]

    async def close_batch(self, batch_id: str) -> None:
        await self._transaction([("DELETE FROM pending_batches WHERE id = ?", (batch_id,))])

    # -- review queue --------------------------------------------------------------------------
    async def list_reviews(
        self,
        *,
        status: str | None = "open",
        limit: int = 100,
        job_id: str | None = None,
        tenant: str | None = None,
    ) -> list[ReviewItem]:
        conditions = [
            (sql, value)
            for sql, value in (
                ("status = ?", status or None),
                ("job_id = ?", job_id or None),
                ("job_id IN (SELECT id FROM jobs WHERE tenant = ?)", tenant),
            )
            if value is not None
        ]
        where = ("WHERE " + " AND ".join(sql for sql, _ in conditions)) if conditions else ""
        params = [value for _, value in conditions]
        rows = await self._fetch(
            f"SELECT {_REVIEW_COLUMNS} FROM review_items {where} "
            "ORDER BY uncertainty DESC, created_at, id LIMIT ?",
            (*params, int(limit)),
        )
        return [_review(r) for r in rows]

    async def get_review(self, review_id: str) -> ReviewItem | None:
        rows = await self._fetch(f"SELECT {_REVIEW_COLUMNS} FROM review_items WHERE id = ?", (review_id,))
        return _review(rows[0]) if rows else None

    async def update_review(self, review_id: str, *, status: str, resolution: Mapping[str, Any]) -> None:
        await self._transaction(
            [
                (
                    "UPDATE review_items SET status = ?, resolution = ?, updated_at = ? WHERE id = ?",
                    (status, _dumps(dict(resolution)), time.time(), review_id),
                )
            ]
        )
