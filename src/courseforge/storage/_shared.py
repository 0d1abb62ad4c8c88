"""What several service processes on one store share, so that they act as one: which process
runs a job or a reviewer-requested regeneration (a claim with a lease, renewed while it runs; a
dead process's are adopted when their lease runs out, a live one's never), dashboard sessions,
and each tenant's submissions in the last window (its jobs-per-minute limit counted across
every process).

The SQL is written once for both backends, on the two primitives they supply.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import Any

from ._base import Store

__all__ = ["SharedStateSQL", "Statement"]

Statement = tuple[str, Sequence[Any]]

#: Statuses a process may be running a job in.
_LIVE = "('queued', 'running')"
#: The status of a review item a process may be regenerating.
_REGENERATING = "'regenerating'"


class SharedStateSQL(Store):
    """Job claims, sessions and submission counts; subclasses provide the two primitives."""

    # -- primitives (backend) ------------------------------------------------------------------
    @abc.abstractmethod
    async def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    @abc.abstractmethod
    async def _transaction(
        self, statements: Sequence[Statement], require: Mapping[int, str] | None = None
    ) -> list[int]:
        """Run the statements in one transaction; return each one's rowcount. `require` maps a
        statement's index to what it guards ("review" | "course"): when that statement changes
        no row, the transaction is rolled back and `StoreConflict` raised (use `_check`)."""

    # -- job claims ----------------------------------------------------------------------------
    async def claim_job(self, job_id: str, owner: str, *, until: float, now: float) -> bool:
        (claimed,) = await self._transaction(
            [
                (
                    f"UPDATE jobs SET owner = ?, lease_until = ? WHERE id = ? AND status IN {_LIVE} "
                    "AND (owner = '' OR owner = ? OR lease_until < ?)",
                    (owner, until, job_id, owner, now),
                )
            ]
        )
        return claimed == 1

    def _in_id_order(self, table: str, where: str) -> str:
        """`id IN (the rows of `table` matching `where`)`, locked in the order of their ids on
        PostgreSQL (`FOR UPDATE` under `ORDER BY`): every transaction that updates many job
        rows takes them in that one order (`save_progress` too), so two never deadlock. SQLite
        has one writer at a time and no row locks."""
        lock = " ORDER BY id FOR UPDATE" if self.dialect == "postgresql" else ""
        return f"id IN (SELECT id FROM {table} WHERE {where}{lock})"

    async def renew_claims(self, owner: str, *, until: float) -> list[str]:
        jobs = self._in_id_order("jobs", f"owner = ? AND status IN {_LIVE}")
        reviews = self._in_id_order("review_items", f"owner = ? AND status = {_REGENERATING}")
        await self._transaction(
            [
                (f"UPDATE jobs SET lease_until = ? WHERE {jobs}", (until, owner)),
                (f"UPDATE review_items SET lease_until = ? WHERE {reviews}", (until, owner)),
            ]
        )
        rows = await self._fetch(
            f"SELECT id FROM jobs WHERE owner = ? AND cancel_requested = 1 AND status IN {_LIVE}", (owner,)
        )
        return [str(r[0]) for r in rows]

    async def release_job(self, job_id: str, owner: str) -> None:
        await self._transaction(
            [("UPDATE jobs SET owner = '', lease_until = 0 WHERE id = ? AND owner = ?", (job_id, owner))]
        )

    async def release_all(self, owner: str) -> int:
        jobs, reviews = await self._transaction(
            [
                (
                    f"UPDATE jobs SET owner = '', lease_until = 0 WHERE {self._in_id_order('jobs', 'owner = ?')}",
                    (owner,),
                ),
                (
                    "UPDATE review_items SET owner = '', lease_until = 0 "
                    f"WHERE {self._in_id_order('review_items', 'owner = ?')}",
                    (owner,),
                ),
            ]
        )
        return jobs + reviews

    async def claimable_jobs(self, *, now: float, limit: int = 500) -> list[str]:
        rows = await self._fetch(
            f"SELECT id FROM jobs WHERE status IN {_LIVE} AND (owner = '' OR lease_until < ?) "
            "ORDER BY created_at, id LIMIT ?",
            (now, int(limit)),
        )
        return [str(r[0]) for r in rows]

    async def job_claim(self, job_id: str) -> tuple[str, float] | None:
        rows = await self._fetch("SELECT owner, lease_until FROM jobs WHERE id = ?", (job_id,))
        return (str(rows[0][0]), float(rows[0][1])) if rows else None

    # -- claims of reviewer-requested regenerations ---------------------------------------------
    async def claim_review(self, review_id: str, owner: str, *, until: float, now: float) -> bool:
        (claimed,) = await self._transaction(
            [
                (
                    "UPDATE review_items SET owner = ?, lease_until = ? "
                    f"WHERE id = ? AND status = {_REGENERATING} AND (owner = '' OR owner = ? OR lease_until < ?)",
                    (owner, until, review_id, owner, now),
                )
            ]
        )
        return claimed == 1

    async def release_review(self, review_id: str, owner: str) -> None:
        await self._transaction(
            [
                (
                    "UPDATE review_items SET owner = '', lease_until = 0 WHERE id = ? AND owner = ?",
                    (review_id, owner),
                )
            ]
        )

    async def review_claim(self, review_id: str) -> tuple[str, float] | None:
        rows = await self._fetch("SELECT owner, lease_until FROM review_items WHERE id = ?", (review_id,))
        return (str(rows[0][0]), float(rows[0][1])) if rows else None

    # -- dashboard sessions --------------------------------------------------------------------
    async def put_session(self, digest: str, csrf: str, *, expires_at: float, now: float) -> None:
        await self._transaction(
            [
                ("DELETE FROM sessions WHERE expires_at <= ?", (now,)),
                (
                    "INSERT INTO sessions (id_digest, csrf, expires_at) VALUES (?,?,?)",
                    (digest, csrf, expires_at),
                ),
            ]
        )

    async def get_session(self, digest: str, *, now: float) -> tuple[str, float] | None:
        rows = await self._fetch(
            "SELECT csrf, expires_at FROM sessions WHERE id_digest = ? AND expires_at > ?", (digest, now)
        )
        return (str(rows[0][0]), float(rows[0][1])) if rows else None

    async def delete_session(self, digest: str) -> None:
        await self._transaction([("DELETE FROM sessions WHERE id_digest = ?", (digest,))])

    # -- tenants' submission rate --------------------------------------------------------------
    async def count_submission(self, tenant: str, *, now: float, window_s: float, limit: int) -> float | None:
        # The upsert of the tenant's row is taken first: it locks that row until the transaction
        # ends, so two processes counting the same tenant's submission at once take turns, and
        # the second one's count (a statement after the lock) sees the first one's row.
        since = now - window_s
        counts = await self._transaction(
            [
                (
                    "INSERT INTO tenant_locks (tenant, touched) VALUES (?, ?) "
                    "ON CONFLICT (tenant) DO UPDATE SET touched = excluded.touched",
                    (tenant, now),
                ),
                ("DELETE FROM tenant_submissions WHERE tenant = ? AND at <= ?", (tenant, since)),
                (
                    "INSERT INTO tenant_submissions (tenant, at) SELECT ?, ? WHERE "
                    "(SELECT COUNT(*) FROM tenant_submissions WHERE tenant = ? AND at > ?) < ?",
                    (tenant, now, tenant, since, int(limit)),
                ),
            ]
        )
        if counts[2] == 1:
            return None
        rows = await self._fetch(
            "SELECT MIN(at) FROM tenant_submissions WHERE tenant = ? AND at > ?", (tenant, since)
        )
        oldest = float(rows[0][0]) if rows and rows[0][0] is not None else now
        return max(0.0, oldest + window_s - now)
