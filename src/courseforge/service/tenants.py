"""Tenants of the service: which token belongs to whom, what a caller may see, and the
per-tenant limits on submissions (a rate) and spend (a rolling 24-hour budget).

A token from `service.api_tokens_env` belongs to the default tenant "" (the one CLI jobs have);
a token from `service.tenants.ID.tokens_env` to tenant ID. A caller sees only its tenant's jobs,
courses, reports, events, exports and review items (another tenant's answer 404, as if absent);
its idempotency keys are its own; an `admin: true` tenant sees everything. The dashboard (/ui)
shows every job, so with tenants configured only admin tokens sign in to it. The route dependency
sets the caller for the request (`current_caller()`), so a router checks `may_see(job)`
instead of threading the caller through every function.
"""

from __future__ import annotations

import contextvars
import hmac
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from ..config import Settings
from ..errors import ConfigError
from ..storage import Job, Store

__all__ = [
    "ANONYMOUS",
    "Caller",
    "TenantDirectory",
    "TenantLimits",
    "current_caller",
    "may_see",
    "tenant_tokens",
]


@dataclass(frozen=True, slots=True)
class Caller:
    tenant: str
    admin: bool = False

    def scope(self) -> str | None:
        """The tenant to filter listings by; None (every tenant) for an admin."""
        return None if self.admin else self.tenant


#: Before authentication (and outside requests): the default tenant, no admin rights.
ANONYMOUS = Caller("")
_caller: contextvars.ContextVar[Caller] = contextvars.ContextVar("courseforge_caller", default=ANONYMOUS)


def current_caller() -> Caller:
    """The authenticated caller of the request being served."""
    return _caller.get()


def set_caller(caller: Caller) -> None:
    _caller.set(caller)


def may_see(job: Job, caller: Caller | None = None) -> bool:
    """Whether the caller (default: the current one) may see and act on `job`."""
    who = caller or current_caller()
    return who.admin or job.tenant == who.tenant


def _split(value: str) -> list[str]:
    return [t.strip() for t in value.split(",") if t.strip()]


def tenant_tokens(settings: Settings, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """token -> tenant from the environment variables the config names. A token given to two
    tenants is a ConfigError (who would it be?)."""
    source = os.environ if env is None else env
    out: dict[str, str] = {}
    named = [("", settings.service.api_tokens_env)] + [
        (tenant, t.tokens_env) for tenant, t in sorted(settings.service.tenants.items())
    ]
    for tenant, var in named:
        for token in _split(source.get(var, "")):
            if token in out and out[token] != tenant:
                raise ConfigError(
                    "a token belongs to two tenants",
                    [(f"${var}", f"also in tenant {out[token]!r}'s variable; give each tenant its own")],
                )
            out[token] = tenant
    return out


class TenantDirectory:
    """Bearer token -> Caller, compared in constant time against every known token."""

    def __init__(self, tokens: Mapping[str, str], settings: Settings) -> None:
        admins = {t for t, ts in settings.service.tenants.items() if ts.admin}
        self._entries = [
            (token.encode(), Caller(tenant, tenant in admins)) for token, tenant in tokens.items() if token
        ]

    def __len__(self) -> int:
        return len(self._entries)

    def dashboard_tokens(self, settings: Settings) -> list[bytes]:
        """Tokens that may sign in to the dashboard (/ui), which shows every job: every token of
        a service without tenants, else the admin tenants' only."""
        if not settings.service.tenants:
            return [token for token, _ in self._entries]
        return [token for token, caller in self._entries if caller.admin]

    def caller_for(self, token: str) -> Caller | None:
        given = token.encode()
        found: Caller | None = None
        for known, caller in self._entries:
            if hmac.compare_digest(given, known):  # no early exit: timing says nothing
                found = caller
        return found


class TenantLimits:
    """Per-tenant submission rate (any 60 s, counted in the store: every service process on it
    counts against the same limit) and rolling 24-hour budget."""

    def __init__(self, settings: Settings, store: Store, *, now: Callable[[], float] = time.time) -> None:
        self._settings = settings
        self._store = store
        self._now = now

    async def rate_exceeded(self, tenant: str) -> float | None:
        """None when `tenant` may submit now (and the submission is counted), else the seconds
        until it may."""
        config = self._settings.service.tenants.get(tenant)
        if config is None or config.jobs_per_minute is None:
            return None
        return await self._store.count_submission(
            tenant, now=self._now(), window_s=60.0, limit=config.jobs_per_minute
        )

    async def budget_left(self, tenant: str) -> Decimal | None:
        """USD the tenant may still commit in the rolling 24 hours (None: no budget): the budget
        less what its runs of the last 24 hours spent and the caps of its unfinished jobs."""
        config = self._settings.service.tenants.get(tenant)
        if config is None or config.budget_usd_per_day is None:
            return None
        spent = await self._store.tenant_spend(tenant, since=self._now() - 86_400)
        unfinished = [
            job
            for status in ("queued", "running")
            for job in await self._store.list_jobs(status=status, limit=100_000, tenant=tenant)
        ]
        committed = sum((self.cap_of(job.analysis) for job in unfinished), Decimal(0))
        return config.budget_usd_per_day - spent - committed

    def cap_of(self, analysis: Mapping[str, object]) -> Decimal:
        """A job's budget cap from its stored analysis (as `ledger.course_cap`)."""
        given = analysis.get("budget_usd")
        return Decimal(str(given)) if given is not None else self._settings.budget.per_course_usd
