"""Breaker health in /metrics (service/metrics.py): each model's and provider's window failure
rate and whether it last opened judging them down (issue 19)."""

from __future__ import annotations

from prometheus_client import generate_latest

from courseforge.resilience import BreakerPolicy, BreakerRegistry, FakeClock
from courseforge.service.metrics import ServiceMetrics


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
