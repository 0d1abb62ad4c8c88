"""The generation report: every call's tokens, cost, latency and routing decision."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal, Protocol

from pydantic import Field

from ._base import Money, Open
from .quality import QualitySummary

__all__ = [
    "BreakerReport",
    "CallOutcome",
    "CallRecord",
    "Decision",
    "GateScore",
    "LessonGates",
    "Report",
    "ReportStatus",
    "Totals",
]

#: "cancelled": a hedged request that lost to the other one (its prompt tokens billed), or a
#: request in flight when its job was cancelled (usage unknown); `reason` says which.
CallOutcome = Literal["ok", "rejected", "error", "budget_blocked", "skipped", "cancelled"]
ReportStatus = Literal["approved", "needs_review", "failed", "cancelled", "plan_review"]


class TokenCounts(Protocol):
    """What a call's usage (`providers.Usage`), a checkpoint and a cached response all carry."""

    @property
    def input_tokens(self) -> int: ...
    @property
    def output_tokens(self) -> int: ...
    @property
    def cached_tokens(self) -> int: ...
    @property
    def reasoning_tokens(self) -> int: ...
    @property
    def cache_write_tokens(self) -> int: ...


def tokens_of(source: TokenCounts, *, cache_writes: bool = True) -> dict[str, int]:
    """A call's token counts, by the field names `CallRecord`, `Checkpoint` and `CachedResponse`
    share, for `**` into any of them. A rejected answer's record leaves `cache_write_tokens` out
    (`cache_writes=False`), as it always has."""
    counts = {
        "input_tokens": source.input_tokens,
        "output_tokens": source.output_tokens,
        "cached_tokens": source.cached_tokens,
        "reasoning_tokens": source.reasoning_tokens,
    }
    if cache_writes:
        counts["cache_write_tokens"] = source.cache_write_tokens
    return counts


class CallRecord(Open):
    """One model call (or one that was blocked before it was sent)."""

    phase: str
    #: The task's key (`domain.tasks.TaskId.key()`), e.g. "lesson:S2-L1/r1".
    task: str
    #: The phase's round: phase 5 (completeness) repeats; 0 for every other phase.
    round: int = 0
    model: str
    tier: str
    attempt: int
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: Money = Decimal(0)
    latency_ms: float = 0.0
    #: ok: accepted; rejected: answered but a gate or the schema refused it (still billed);
    #: error: provider failure; budget_blocked: not sent, the cap would be exceeded;
    #: skipped: its breaker was open; cancelled: a hedge leg that lost (its cost, if any, kept).
    outcome: CallOutcome
    reason: str = ""
    #: Milliseconds since the run started, when the call was sent.
    started_ms: float = 0.0
    #: True when this answer came from the store instead of the provider (not paid again).
    replayed: bool = False
    #: True when the response cache answered (not sent; `cost_usd` 0, `saved_usd` what it cost
    #: when it was paid for; `latency_ms` the lookup).
    cache_hit: bool = False
    #: What this record did not pay: a cache hit's original cost, or the provider prompt
    #: cache's discount on `cached_tokens` (priced at the model's cache-read price).
    saved_usd: Money = Decimal(0)
    #: Prompt tokens the provider wrote into its prompt cache (priced at the cache-write price).
    cache_write_tokens: int = 0
    #: The provider batch that answered (batch mode; priced at the model's batch multiplier).
    batch_id: str = ""
    cost_source: Literal["provider", "price_table", "none"] = "price_table"
    #: Output tokens the model spent thinking (inside `output_tokens`: billed as output).
    reasoning_tokens: int = 0
    #: The answer's `finish_reason` (stop, length, error, ...) and the upstream provider's own
    #: (`native_finish_reason`), as the provider sent them ("" when it answered none).
    finish_reason: str = ""
    native_finish_reason: str = ""
    #: When the provider billed the call (`cost_source` provider): what the price table would
    #: have charged for the same usage (the report compares the two per model); else None.
    price_table_usd: Money | None = None


class Decision(Open):
    """A routing or escalation decision, with the inputs it was made from."""

    task: str
    action: str  # route | accept | retry | escalate | fallback | flag | step_down | fix | regenerate | repair
    tier: str
    reason: str
    inputs: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def fix(cls, task: str, reason: str) -> Decision:
        """A rule-based repair (no model call, so no tier)."""
        return cls(task=task, action="fix", tier="", reason=reason)


class GateScore(Open):
    gate: str
    passed: bool
    score: float | None = None
    #: The score the gate compares with (pass at or above it, unless the gate says otherwise).
    threshold: float | None = None
    verdict: str = ""
    reasons: list[str] = Field(default_factory=list)


class LessonGates(Open):
    lesson_id: str
    #: Calls that wrote this lesson (every generation of it; samples count once per attempt).
    attempts: int
    final_tier: str
    final_model: str
    gates: list[GateScore]
    #: accepted (every gate passed), flagged (best attempt kept for a person), failed (none
    #: usable), or "" where nothing was generated (`courseforge check`).
    status: str = ""
    #: The tier its first generation started on.
    start_tier: str = ""


class Totals(Open):
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Money = Decimal(0)
    #: Of `output_tokens`, those spent thinking.
    reasoning_tokens: int = 0


class BreakerReport(Open):
    """A model's circuit breaker when the course ended (breakers are shared by the engine's
    courses, so `opens` counts since the engine started)."""

    state: Literal["closed", "open", "half_open"]
    consecutive_failures: int = 0
    opens: int = 0
    #: Share of failed calls in its sliding window, and how many calls that window holds.
    failure_rate: float = 0.0
    window_calls: int = 0
    #: What the window said when it last opened: "down" (the seed rule's 60 s cooldown),
    #: "flaky" (a short cooldown that grows while failures continue), "" (never opened).
    health: Literal["", "flaky", "down"] = ""
    #: The cooldown it last opened with, and why it opened.
    cooldown_s: float = 0.0
    reason: str = ""


class Report(Open):
    course_id: str
    status: ReportStatus
    failure_reason: str = ""
    profile: str = ""
    total_cost_usd: Money = Decimal(0)
    budget_usd: Money
    #: Phase -> its own ceiling inside `budget_usd` (`budget.phase_shares`); its spend is
    #: `by_phase[phase].cost_usd`. Empty when no phase has one.
    phase_budget_usd: dict[str, Money] = Field(default_factory=dict)
    by_phase: dict[str, Totals] = Field(default_factory=dict)
    by_model: dict[str, Totals] = Field(default_factory=dict)
    calls: list[CallRecord] = Field(default_factory=list)
    decisions: list[Decision] = Field(default_factory=list)
    escalations: int = 0
    retries: int = 0
    cache_hits: int = 0
    lessons: list[LessonGates] = Field(default_factory=list)
    review_flags: int = 0
    wall_time_s: float = 0.0
    #: Sum of every call's latency: the time the same calls would take one after another.
    sum_call_latency_s: float = 0.0
    #: Longest chain of calls that had to follow each other.
    critical_path_s: float = 0.0
    summary: dict[str, Any] = Field(default_factory=dict)
    #: The seeds' per-course quality figures (similarity and composite means, first-attempt
    #: pass, escalation and human-review rates, judge disagreements, ungrounded claims).
    quality: QualitySummary | None = None
    #: Model id -> its circuit breaker's state, for every model this engine has called.
    breakers: dict[str, BreakerReport] = Field(default_factory=dict)
    #: Provider faults this course met, per class (rate_limited, http_503, timeout,
    #: bad_response_empty, circuit_open, ...), retried or not.
    faults: dict[str, int] = Field(default_factory=dict)
