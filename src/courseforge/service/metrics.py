"""Prometheus metrics of the service, one registry per app (so tests and two apps in one
process never share counters). Per-call figures come from `telemetry.CallMetrics`, hooked on the
engine: counted as each call is recorded. Jobs are counted as they are submitted and end;
gauges (queue, breakers, review queue) are read when /metrics is scraped. With Temporal
configured the calls run in the workers: their per-call figures are on each worker's own
exporter (`courseforge worker --metrics-port`), and the service counts course outcomes. No
label ever carries a token, a key or course content."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import Counter, Gauge, Histogram

from ..domain import Report
from ..telemetry.metrics import CallMetrics

__all__ = ["ServiceMetrics"]

_JOB_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1200, 3600)


class ServiceMetrics(CallMetrics):
    def __init__(self) -> None:
        super().__init__()
        r = self.registry
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

    def observe_report(self, report: Report) -> None:
        """A job's run ended: its course's outcome (its calls were counted as they happened)."""
        self.observe_course(report)

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
        self.set_breakers(list(breakers()))
