"""Prometheus metrics of model calls and courses, updated as calls happen.

`CallMetrics` is a `Hooks` callable: added to an engine's hooks (`Engine.add_hook`) it counts
every call the moment it is recorded on a course's ledger (`CallRecorded`), and every retry,
provider fault, fallback and breaker transition of the engine's model stacks. A Temporal worker
counts its activities' calls with `observe_call` (the ledger lives in the workflow there);
`observe_course` adds a finished course's outcome. One registry per object: the service, a
worker and a CLI run each own theirs, and tests never share counters.

No label carries a token, a key or course content: only phase, model, tier, outcome, fault
class, breaker state and gate names. docs/operations.md lists every metric.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from ..domain import CallRecord, Report
from ..resilience import (
    BreakerTransition,
    CallRecorded,
    FallbackTaken,
    FaultObserved,
    ResilienceEvent,
    RetryScheduled,
)
from .tracing import is_cached

__all__ = ["LATENCY_BUCKETS_S", "CallMetrics", "breaker_value"]

#: Call latency buckets, seconds: P50/P95/P99 come from these (the P95 alert is at 60 s).
LATENCY_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 40, 60, 80, 160)
_COST_BUCKETS_USD = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.45, 0.6, 1.0, 2.0)
_RATE_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0)
_SIMILARITY_BUCKETS = (0.3, 0.4, 0.5, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)


def breaker_value(state: str) -> float:
    """A breaker state as a gauge value: 0 closed, 1 open (calls skipped), 0.5 anything between
    (half-open: probing; any state a later breaker adds that is neither)."""
    if state == "closed":
        return 0.0
    return 1.0 if state == "open" else 0.5


class CallMetrics:
    """Per-call and per-course metrics on one registry (`registry`)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry if registry is not None else CollectorRegistry()

        def counter(name: str, doc: str, *labels: str) -> Counter:
            return Counter(f"courseforge_{name}", doc, labels, registry=r)

        def gauge(name: str, doc: str, *labels: str) -> Gauge:
            return Gauge(f"courseforge_{name}", doc, labels, registry=r)

        def histogram(name: str, doc: str, buckets: tuple[float, ...], *labels: str) -> Histogram:
            return Histogram(f"courseforge_{name}", doc, labels, buckets=buckets, registry=r)

        # -- per call, as it is recorded (or sent, in a worker)
        self.calls = counter(
            "calls",
            "Model calls as they are recorded, by outcome (ok, rejected: answered but unusable, error, "
            "budget_blocked, skipped: breaker open, cancelled: in flight when its job was cancelled, replayed).",
            *("phase", "model", "tier", "outcome"),
        )
        self.latency = histogram(
            "call_latency_seconds",
            "Latency of answered model calls (retries included), by phase, model and tier.",
            LATENCY_BUCKETS_S,
            *("phase", "model", "tier"),
        )
        self.tokens = counter(
            "tokens",
            "Tokens of paid calls: input, output, cached (input served from a provider's cache) and "
            "reasoning (output a reasoning model spent thinking, inside output).",
            *("model", "tier", "direction"),
        )
        self.cost = counter(
            "cost_usd",
            "USD paid to providers (replayed calls excluded: they were paid once, earlier).",
            *("phase", "model", "tier"),
        )
        self.replayed_cost = counter(
            "replayed_cost_usd", "USD of calls replayed from checkpoints (not paid again)."
        )
        self.cache_hits = counter("cache_hits", "Calls answered from the response cache.", "model", "tier")
        self.budget_blocks = counter(
            "budget_blocks",
            "Calls not sent because the course's budget cap would have been exceeded.",
            *("phase", "tier"),
        )
        # -- the model stacks' resilience events
        self.retries = counter(
            "retries",
            "Transport retries scheduled (429, 5xx, timeouts, unusable answers), by fault class.",
            *("model", "kind"),
        )
        self.faults = counter(
            "provider_faults",
            "Provider sends that failed, retried or not, by fault class (rate_limited, http_503, timeout, "
            "bad_response_*, ...).",
            *("model", "kind"),
        )
        self.fallbacks = counter(
            "fallbacks",
            "A model of a tier's chain failed and the call moved on to the next.",
            *("model", "to_model", "kind"),
        )
        self.breaker_changes = counter(
            "breaker_transitions", "Circuit-breaker state changes.", "model", "from_state", "to_state"
        )
        self.breaker_open = gauge(
            "breaker_open",
            "1 when the model's circuit breaker is open (calls skipped), 0.5 half-open, 0 closed.",
            "model",
        )
        # -- per finished course
        self.courses = counter(
            "courses", "Courses finished, by status (approved, needs_review, failed).", "status"
        )
        self.course_cost = histogram(
            "course_cost_usd", "Total cost of one finished course.", _COST_BUCKETS_USD
        )
        self.course_similarity = histogram(
            "course_similarity_mean",
            "A finished course's mean lesson-to-outcome similarity.",
            _SIMILARITY_BUCKETS,
        )
        self.lessons = counter("lessons", "Lessons of finished courses.")
        self.lessons_escalated = counter(
            "lessons_escalated",
            "Lessons of finished courses whose final tier is above the tier they started on.",
        )
        self.lessons_flagged = counter(
            "lessons_flagged",
            "Lessons of finished courses flagged for a person (the seeds' human-review rate: flagged / lessons).",
        )
        self.unsupported_claims = histogram(
            "course_unsupported_claim_rate",
            "A finished grounded course's share of factual claims its sources do not support (1 - the "
            "grounding gate's mean support): the hallucination rate.",
            _RATE_BUCKETS,
        )
        self.escalations = counter(
            "escalations",
            "Escalate decisions of finished courses: a task moved to a stronger tier (every task kind).",
        )
        self.review_flags = counter("review_flags", "Review flags raised by finished courses.")
        self.gate_checks = counter("gate_checks", "Final gate verdicts per lesson.", "gate", "result")
        self.judge_reference = counter(
            "judge_reference_samples",
            "Calibration-sample lessons judged by both the gating judge and the reference judge, by "
            "whether their verdicts agree (the disagreement rate is disagree / all).",
            "agreement",
        )
        self.review_open = gauge("review_queue_open", "Review items waiting for a person.")
        self._bound: dict[tuple[str, str, str, str], tuple[Any, ...]] = {}

    # -- as calls happen ------------------------------------------------------------------------
    def __call__(self, event: ResilienceEvent) -> None:
        """The hook: every call recorded, and the model stacks' resilience events."""
        if isinstance(event, CallRecorded):
            self.observe_call(event.record)
        elif isinstance(event, RetryScheduled):
            self.retries.labels(event.model_id, event.error_kind).inc()
        elif isinstance(event, FaultObserved):
            self.faults.labels(event.model_id, event.kind).inc()
        elif isinstance(event, FallbackTaken):
            self.fallbacks.labels(event.model_id, event.to_model, event.kind).inc()
        elif isinstance(event, BreakerTransition):
            self.breaker_changes.labels(event.model_id, event.old, event.new).inc()
            self.breaker_open.labels(event.model_id).set(breaker_value(event.new))

    def observe_call(self, c: CallRecord) -> None:
        if c.replayed:
            self.calls.labels(c.phase, c.model, c.tier, "replayed").inc()
            self.replayed_cost.inc(float(c.cost_usd))
            return
        bound = self._bound.get((c.phase, c.model, c.tier, c.outcome))
        if bound is None:
            bound = self._bind(c)
        calls, latency, tokens_in, tokens_out, tokens_cached, tokens_reasoning, cost = bound
        calls.inc()
        if c.outcome == "budget_blocked":
            self.budget_blocks.labels(c.phase, c.tier).inc()
            return
        if is_cached(c):  # answered by our cache, not a provider: no latency or tokens of one
            self.cache_hits.labels(c.model, c.tier).inc()
            return
        if c.cost_usd:
            cost.inc(float(c.cost_usd))
        if c.input_tokens or c.output_tokens:
            tokens_in.inc(c.input_tokens)
            tokens_out.inc(c.output_tokens)
            tokens_cached.inc(c.cached_tokens)
            tokens_reasoning.inc(c.reasoning_tokens)
        if c.outcome in ("ok", "rejected"):
            latency.observe(c.latency_ms / 1000)

    def _bind(self, c: CallRecord) -> tuple[Any, ...]:
        """The labelled series one kind of call updates, looked up once (a `labels()` lookup
        costs more than the update itself, and this runs for every call)."""
        bound = (
            self.calls.labels(c.phase, c.model, c.tier, c.outcome),
            self.latency.labels(c.phase, c.model, c.tier),
            self.tokens.labels(c.model, c.tier, "input"),
            self.tokens.labels(c.model, c.tier, "output"),
            self.tokens.labels(c.model, c.tier, "cached"),
            self.tokens.labels(c.model, c.tier, "reasoning"),
            self.cost.labels(c.phase, c.model, c.tier),
        )
        self._bound[c.phase, c.model, c.tier, c.outcome] = bound
        return bound

    # -- when a course ends ---------------------------------------------------------------------
    def observe_course(self, report: Report) -> None:
        """A finished course's outcome: status, cost, similarity, escalation, flags, gates, and its
        calibration sample's judge-vs-reference agreement."""
        self.courses.labels(report.status).inc()
        self.course_cost.observe(float(report.total_cost_usd))
        quality = report.quality
        if quality is not None and quality.similarity_mean is not None:
            self.course_similarity.observe(quality.similarity_mean)
        lessons = len(report.lessons)
        self.lessons.inc(lessons)
        if quality is not None and quality.escalation_rate is not None:
            self.lessons_escalated.inc(round(quality.escalation_rate * lessons))
        if quality is not None and quality.human_review_rate is not None:
            self.lessons_flagged.inc(round(quality.human_review_rate * lessons))
        if quality is not None and quality.grounding_support_mean is not None:
            self.unsupported_claims.observe(round(1 - quality.grounding_support_mean, 6))
        self.escalations.inc(report.escalations)
        self.review_flags.inc(report.review_flags)
        for lesson in report.lessons:
            for g in lesson.gates:
                self.gate_checks.labels(g.gate, "pass" if g.passed else "fail").inc()
        referenced = quality.judge_reference_samples if quality else 0
        if referenced:
            rate = (quality.judge_reference_disagreement_rate if quality else None) or 0.0
            disagreed = round(referenced * rate)
            self.judge_reference.labels("disagree").inc(disagreed)
            self.judge_reference.labels("agree").inc(referenced - disagreed)

    def set_breakers(self, states: list[tuple[str, str]]) -> None:
        for model, state in states:
            self.breaker_open.labels(model).set(breaker_value(state))

    def write_textfile(self, path: Path) -> None:
        """Write every metric for a node-exporter textfile collector: to a temporary file beside
        `path`, then renamed over it, so the collector never reads half a file. The temporary
        file is named `.NAME.XXXXXXXX.tmp` like every atomic write of ours, so the CLI's check
        that an output can be written holds for this one too (prometheus_client's own writer
        appends a pid and a thread id, which can pass the file-name limit the check proved)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(generate_latest(self.registry))
            os.chmod(tmp, 0o644)  # the collector runs as another user
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
