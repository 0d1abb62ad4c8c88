"""Prometheus metrics of the service, one registry per app (so tests and two apps in one
process never share counters). Per-call figures come from `telemetry.CallMetrics`, hooked on the
engine: counted as each call is recorded. Jobs are counted as they are submitted and end;
gauges (queue, breakers, review queue) are read when /metrics is scraped. With Temporal
configured the calls run in the workers: their per-call figures are on each worker's own
exporter (`courseforge worker --metrics-port`), and the service counts course outcomes. No
label ever carries a token, a key or course content."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..telemetry.metrics import CallMetrics

__all__ = ["LOOP_LAG_INTERVAL_S", "ServiceMetrics", "watch_loop_lag"]

_JOB_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1200, 3600)
#: Event-loop lag buckets: the goal is p99 under 0.1 s (docs/scaling.md).
_LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
#: How often the loop-lag probe wakes.
LOOP_LAG_INTERVAL_S = 0.1


async def watch_loop_lag(
    observe: Callable[[float], None],
    *,
    interval_s: float = LOOP_LAG_INTERVAL_S,
    clock: Callable[[], float] = time.perf_counter,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Until cancelled: sleep `interval_s`, and `observe` how much later than asked the loop woke
    this task. That delay is what every request and every course's next step waits behind
    work that holds the event loop (a gate computing inline, a big JSON document)."""
    while True:
        start = clock()
        await sleep(interval_s)
        observe(max(0.0, clock() - start - interval_s))


class ServiceMetrics(CallMetrics):
    def __init__(self) -> None:
        super().__init__()
        r = self.registry
        self.jobs_submitted = Counter(
            "courseforge_jobs_submitted", "Jobs accepted by POST /v1/jobs.", registry=r
        )
        self.jobs_refused = Counter(
            "courseforge_jobs_refused",
            "Submissions refused with 503 because service.max_queued_jobs jobs waited for a slot.",
            registry=r,
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
        self.jobs_limit = Gauge(
            "courseforge_jobs_limit",
            "Jobs this process generates at once now: service.max_concurrent_jobs, fewer while "
            "the event loop runs later than service.loop_lag_target_s.",
            registry=r,
        )
        self.job_seconds = Histogram(
            "courseforge_job_duration_seconds", "Wall time of one job run.", buckets=_JOB_BUCKETS, registry=r
        )
        self.breaker_failure_rate = Gauge(
            "courseforge_breaker_failure_rate",
            "Share of failed calls in the breaker's sliding window (models, and provider:<name>).",
            ["model"],
            registry=r,
        )
        self.loop_lag = Histogram(
            "courseforge_event_loop_lag_seconds",
            f"How late the event loop woke a task that slept {LOOP_LAG_INTERVAL_S:g} s.",
            buckets=_LAG_BUCKETS,
            registry=r,
        )
        self.breaker_down = Gauge(
            "courseforge_breaker_down",
            "1 when the breaker last opened judging its model or provider down, 0 flaky or never.",
            ["model"],
            registry=r,
        )

    def watch_store(self, stats: Callable[[], Mapping[str, Mapping[str, int]]]) -> None:
        """Report the store's connection pools on every scrape (`Store.pool_stats`): how many
        requests each served, how many queued for a connection and for how long in all, and
        the connections in use — a page that waits on a busy pool shows here, not in loop lag."""
        self.registry.register(_PoolCollector(stats))

    def set_breaker_health(self, health: Iterable[tuple[str, float, bool]]) -> None:
        """(breaker name, window failure rate, judged down) per model and provider breaker."""
        for name, rate, down in health:
            self.breaker_failure_rate.labels(name).set(rate)
            self.breaker_down.labels(name).set(1.0 if down else 0.0)

    def refresh(
        self,
        *,
        queued: int,
        running: int,
        reviews_open: int,
        breakers: Callable[[], Iterable[tuple[str, str]]],
        health: Callable[[], Iterable[tuple[str, float, bool]]] | None = None,
        limit: int | None = None,
    ) -> None:
        self.jobs_queued.set(queued)
        if limit is not None:
            self.jobs_limit.set(limit)
        self.jobs_running.set(running)
        self.review_open.set(reviews_open)
        self.set_breakers(list(breakers()))
        if health is not None:
            self.set_breaker_health(health())


class _PoolCollector(Collector):
    def __init__(self, stats: Callable[[], Mapping[str, Mapping[str, int]]]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        pools = self._stats()
        served = CounterMetricFamily(
            "courseforge_store_pool_requests", "Connections handed out by the store's pool.", labels=["pool"]
        )
        queued = CounterMetricFamily(
            "courseforge_store_pool_queued",
            "Requests for a pooled connection that had to wait for one.",
            labels=["pool"],
        )
        waited = CounterMetricFamily(
            "courseforge_store_pool_wait_seconds",
            "Seconds requests waited for a pooled connection, in all.",
            labels=["pool"],
        )
        in_use = GaugeMetricFamily(
            "courseforge_store_pool_connections_in_use", "Pooled connections lent out now.", labels=["pool"]
        )
        for name, st in sorted(pools.items()):
            served.add_metric([name], st.get("requests_num", 0))
            queued.add_metric([name], st.get("requests_queued", 0))
            waited.add_metric([name], st.get("requests_wait_ms", 0) / 1000)
            in_use.add_metric([name], st.get("pool_size", 0) - st.get("pool_available", 0))
        yield from (served, queued, waited, in_use)
