"""Prometheus metrics of the service, one registry per app (so tests and two apps in one
process never share counters). Per-call figures are added when a job's report is saved; gauges
(queue, breakers, review queue) are read when /metrics is scraped. No label ever carries a
token, a key or course content: only phase, model, tier, outcome, gate and status names."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ..domain import Report

__all__ = ["ServiceMetrics"]

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 40, 80, 160)
_JOB_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1200, 3600)


class ServiceMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.jobs_submitted = Counter(
            "courseforge_jobs_submitted", "Jobs accepted by POST /v1/jobs.", registry=r
        )
        self.jobs_finished = Counter(
            "courseforge_jobs_finished", "Jobs that reached a final state.", ["status"], registry=r
        )
        self.revisions = Counter(
            "courseforge_revisions",
            "Reviewer-requested lesson regenerations by result (regenerated, open: still flagged or "
            "failed, error).",
            ["status"],
            registry=r,
        )
        self.jobs_running = Gauge("courseforge_jobs_running", "Jobs generating now.", registry=r)
        self.jobs_queued = Gauge("courseforge_jobs_queued", "Jobs waiting for a slot.", registry=r)
        self.job_seconds = Histogram(
            "courseforge_job_duration_seconds", "Wall time of one job run.", buckets=_JOB_BUCKETS, registry=r
        )
        self.cost = Counter(
            "courseforge_cost_usd",
            "USD paid to providers (replayed calls excluded: they were paid once, earlier).",
            ["phase", "model"],
            registry=r,
        )
        self.replayed_cost = Counter(
            "courseforge_replayed_cost_usd",
            "USD of calls replayed from checkpoints (not paid again).",
            registry=r,
        )
        self.tokens = Counter(
            "courseforge_tokens", "Tokens sent and received.", ["model", "direction"], registry=r
        )
        self.calls = Counter(
            "courseforge_calls",
            "Model calls by outcome (ok, rejected, error, budget_blocked, cancelled: in flight when its job was cancelled, replayed).",
            ["phase", "model", "tier", "outcome"],
            registry=r,
        )
        self.escalations = Counter(
            "courseforge_escalations",
            "Escalate decisions: a task moved to a stronger tier (every task kind).",
            registry=r,
        )
        self.retries = Counter("courseforge_retries", "Transport retries (429, 5xx, timeouts).", registry=r)
        self.gate_checks = Counter(
            "courseforge_gate_checks", "Final gate verdicts per lesson.", ["gate", "result"], registry=r
        )
        self.latency = Histogram(
            "courseforge_call_latency_seconds",
            "Latency of paid model calls.",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.breaker_open = Gauge(
            "courseforge_breaker_open",
            "1 when the model's circuit breaker is open (0.5 half-open).",
            ["model"],
            registry=r,
        )
        self.review_open = Gauge(
            "courseforge_review_queue_open", "Review items waiting for a person.", registry=r
        )

    def observe_report(self, report: Report) -> None:
        for c in report.calls:
            if c.replayed:
                self.calls.labels(c.phase, c.model, c.tier, "replayed").inc()
                self.replayed_cost.inc(float(c.cost_usd))
                continue
            self.calls.labels(c.phase, c.model, c.tier, c.outcome).inc()
            self.cost.labels(c.phase, c.model).inc(float(c.cost_usd))
            self.tokens.labels(c.model, "input").inc(c.input_tokens)
            self.tokens.labels(c.model, "output").inc(c.output_tokens)
            if c.outcome in ("ok", "rejected"):
                self.latency.labels(c.model).observe(c.latency_ms / 1000)
        self.escalations.inc(report.escalations)
        self.retries.inc(report.retries)
        for lesson in report.lessons:
            for g in lesson.gates:
                self.gate_checks.labels(g.gate, "pass" if g.passed else "fail").inc()

    def set_breakers(self, states: Iterable[tuple[str, str]]) -> None:
        value = {"closed": 0.0, "half_open": 0.5, "open": 1.0}
        for model, state in states:
            self.breaker_open.labels(model).set(value.get(state, 0.0))

    def refresh(
        self,
        *,
        queued: int,
        running: int,
        reviews_open: int,
        breakers: Callable[[], Iterable[tuple[str, str]]],
    ) -> None:
        self.jobs_queued.set(queued)
        self.jobs_running.set(running)
        self.review_open.set(reviews_open)
        self.set_breakers(breakers())
