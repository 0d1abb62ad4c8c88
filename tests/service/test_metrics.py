"""The service's /metrics moves while a job runs: per-call figures, not only at job end."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from service_helpers import AUTH, body, service, wait_for

from courseforge.config import Settings
from courseforge.providers import ChatRequest
from courseforge.resilience import BreakerPolicy, BreakerRegistry, FakeClock
from courseforge.service.metrics import ServiceMetrics
from courseforge.testing import CourseAuthor, ScriptedModel


def sample_sum(text: str, name: str, **labels: str) -> float:
    return sum(
        s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def test_metrics_count_calls_while_the_job_is_still_running(settings: Settings, tmp_path: Path) -> None:
    release = threading.Event()
    author = CourseAuthor()

    async def script(request: ChatRequest) -> str:
        # Every lesson call waits until the test has looked at /metrics.
        while request.tags.get("task", "").startswith("lesson:") and not release.is_set():
            await asyncio.sleep(0.01)
        return author(request)

    models = {m: ScriptedModel(script, model_id=m) for m in settings.models}
    with service(settings, tmp_path, models=models) as client:
        job_id = client.post("/v1/jobs", json=body(), headers=AUTH).json()["id"]
        deadline = time.monotonic() + 180  # a loaded machine (as `wait_for`)
        while True:  # phase 2 done, phase 3's calls held back
            job = client.get(f"/v1/jobs/{job_id}", headers=AUTH).json()
            if job.get("progress", {}).get("phases", {}).get("metadata", {}).get("state") == "done":
                break
            assert time.monotonic() < deadline, f"phase 2 did not finish: {job}"
            time.sleep(0.02)
        during = client.get("/metrics").text
        assert client.get(f"/v1/jobs/{job_id}", headers=AUTH).json()["status"] == "running"
        assert sample_sum(during, "courseforge_calls_total", phase="metadata") > 0
        assert sample_sum(during, "courseforge_jobs_finished_total") == 0
        assert sample_sum(during, "courseforge_call_latency_seconds_count", tier="premium") > 0
        assert sample_sum(during, "courseforge_tokens_total", direction="input") > 0
        release.set()
        assert wait_for(client, job_id)["status"] == "completed"
        report = client.get(f"/v1/jobs/{job_id}/report", headers=AUTH).json()
        after = client.get("/metrics").text
    assert sample_sum(after, "courseforge_calls_total") == len(report["calls"])
    assert sample_sum(after, "courseforge_courses_total", status=report["status"]) == 1
    assert sample_sum(after, "courseforge_cost_usd_total") == pytest.approx(float(report["total_cost_usd"]))


def test_breaker_health_is_exported_per_model_and_provider() -> None:
    clock = FakeClock()
    registry = BreakerRegistry(clock=clock, policy=BreakerPolicy(min_calls=3))
    flaky, down = registry.breaker("flaky-model"), registry.breaker("down-model")
    for breaker, pattern in ((flaky, "......xxx"), (down, "xxx")):
        for c in pattern:
            permit = breaker.allow()
            assert permit is not None
            (breaker.record_failure if c == "x" else breaker.record_success)(permit)
    registry.provider_breaker("openrouter")
    metrics = ServiceMetrics()
    metrics.refresh(
        queued=0,
        running=0,
        reviews_open=0,
        breakers=lambda: [(m, registry.breaker(m).state) for m in ("flaky-model", "down-model")],
        health=lambda: [(n, s.failure_rate, s.health == "down") for n, s in registry.snapshots().items()],
    )
    text = generate_latest(metrics.registry).decode()
    assert 'courseforge_breaker_open{model="flaky-model"} 1.0' in text
    assert 'courseforge_breaker_failure_rate{model="flaky-model"} 0.333' in text
    assert 'courseforge_breaker_down{model="flaky-model"} 0.0' in text
    assert 'courseforge_breaker_down{model="down-model"} 1.0' in text
    assert 'courseforge_breaker_failure_rate{model="provider:openrouter"} 0.0' in text


async def test_loop_lag_probe_observes_how_late_the_loop_woke_it() -> None:
    """A fake clock: each sleep of 0.1 s "takes" 0.1 s plus the lag scripted for it."""
    from courseforge.service.metrics import watch_loop_lag

    now = [0.0]
    lags = iter([0.0, 0.03, 0.25])
    seen: list[float] = []

    async def sleep(seconds: float) -> None:
        try:
            now[0] += seconds + next(lags)
        except StopIteration:
            raise asyncio.CancelledError from None

    with pytest.raises(asyncio.CancelledError):
        await watch_loop_lag(seen.append, interval_s=0.1, clock=lambda: now[0], sleep=sleep)
    assert [round(x, 6) for x in seen] == [0.0, 0.03, 0.25]
    metrics = ServiceMetrics()
    for lag in seen:
        metrics.loop_lag.observe(lag)
    text = generate_latest(metrics.registry).decode()
    assert sample_sum(text, "courseforge_event_loop_lag_seconds_bucket", le="0.1") == 2.0
    assert sample_sum(text, "courseforge_event_loop_lag_seconds_count") == 3.0
