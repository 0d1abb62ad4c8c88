"""The wrappers compose in the engine's order and keep the inner model's id."""

from __future__ import annotations

import asyncio
import random

import pytest

import courseforge.resilience as resilience
from courseforge.errors import CircuitOpen, ProviderHTTPError, ProviderTimeout, RateLimited
from courseforge.providers.base import ChatModel, ChatRequest
from courseforge.resilience import (
    BreakerPolicy,
    BreakerRegistry,
    FakeClock,
    LimitedModel,
    RateLimiter,
    RecordingHooks,
    RetryingModel,
    SystemClock,
    is_testing,
    set_testing,
)
from courseforge.testing import ScriptedModel, sequence
from courseforge.testing.scripted import Answer

from .conftest import SEED


def _stack(
    provider: ChatModel,
    clock: FakeClock,
    hooks: RecordingHooks,
    registry: BreakerRegistry,
    *,
    max_retries: int,
) -> RetryingModel:
    limited = LimitedModel(
        provider,
        semaphore=asyncio.Semaphore(4),
        limiter=RateLimiter(rpm=2, clock=clock),
        default_timeout_s=30.0,
        hooks=hooks,
    )
    breaking = registry.wrap(limited)
    return RetryingModel(breaking, max_retries=max_retries, clock=clock, rng=random.Random(SEED), hooks=hooks)


async def test_full_stack_recovers_and_reports(
    clock: FakeClock, hooks: RecordingHooks, request_: ChatRequest
) -> None:
    provider = ScriptedModel(
        sequence([ProviderHTTPError(502, "bad gateway"), RateLimited("slow", retry_after_s=45.0), "lesson"]),
        model_id="gpt-oss-120b",
    )
    registry = BreakerRegistry(clock=clock, hooks=hooks)
    model = _stack(provider, clock, hooks, registry, max_retries=2)

    layer: ChatModel = model
    while hasattr(layer, "inner"):
        assert layer.model_id == "gpt-oss-120b"
        layer = layer.inner
    assert layer is provider

    assert (await model.complete(request_)).text == "lesson"
    assert provider.calls == 3
    assert hooks.fault_counts() == {"http_502": 1, "rate_limited": 1}
    assert hooks.retries[1].delay_s == 45.0
    # rpm=2, one call every 30 s: the retry after the 502 (under a second later) waited for its
    # turn; the third call came after 45 s of Retry-After, so it did not wait.
    assert [wait.model_id for wait in hooks.waits] == ["gpt-oss-120b"]
    assert 29.0 < hooks.waits[0].waited_s < 30.0
    assert registry.snapshots()["gpt-oss-120b"].state == "closed"
    assert registry.snapshots()["gpt-oss-120b"].consecutive_failures == 0


async def test_open_breaker_stops_retries(
    clock: FakeClock, hooks: RecordingHooks, request_: ChatRequest
) -> None:
    provider = ScriptedModel(sequence([ProviderTimeout("slow")]), model_id="qwen3-max")
    # Judged down from the streak alone (min_calls=3): the seed rule's 60 s, no probe meanwhile.
    registry = BreakerRegistry(clock=clock, hooks=hooks, policy=BreakerPolicy(min_calls=3))
    model = _stack(provider, clock, hooks, registry, max_retries=5)

    with pytest.raises(CircuitOpen) as caught:
        await model.complete(request_)
    assert provider.calls == 3  # the breaker opened after 3; the 4th attempt was refused, not retried
    assert caught.value.model == "qwen3-max"
    assert [r.error_kind for r in hooks.retries] == ["timeout"] * 3
    assert [(t.old, t.new) for t in hooks.transitions] == [("closed", "open")]
    assert len(hooks.waits) == 2  # rpm=2, one call every 30 s: the second and third waited


async def test_aclose_reaches_the_provider(clock: FakeClock, hooks: RecordingHooks) -> None:
    closed: list[str] = []

    class Closable(ScriptedModel):
        async def aclose(self) -> None:
            closed.append(self.model_id)

    answers: list[Answer] = ["ok"]
    model = _stack(Closable(sequence(answers), model_id="p"), clock, hooks, BreakerRegistry(), max_retries=0)
    await model.aclose()
    assert closed == ["p"]


async def test_testing_switch_turns_off_real_waiting() -> None:
    clock = SystemClock()
    assert not is_testing()
    set_testing(True)
    try:
        start = clock.monotonic()
        await clock.sleep(30.0)
        assert clock.monotonic() - start < 1.0
    finally:
        set_testing(False)
    assert not is_testing()


def test_all_lists_every_public_name_once() -> None:
    names = resilience.__all__
    assert len(names) == len(set(names))
    for name in names:
        assert hasattr(resilience, name), name
    public = {n for n in vars(resilience) if not n.startswith("_")}
    submodules = {
        "breaker",
        "clock",
        "content",
        "degrade",
        "fallback",
        "hedge",
        "hooks",
        "limits",
        "metering",
        "redis_limits",
        "retry",
        "structured",
    }
    assert public - submodules - {"annotations"} == set(names)
