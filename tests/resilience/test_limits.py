from __future__ import annotations

import asyncio

import pytest

from courseforge.errors import ProviderError, ProviderTimeout
from courseforge.providers.base import ChatRequest, Message
from courseforge.resilience import (
    FakeClock,
    LimitedModel,
    RateLimiter,
    RateLimitWait,
    RecordingHooks,
    estimate_request_tokens,
)
from courseforge.testing import ScriptedModel, sequence

#: Upper bound on real waiting where a bug would otherwise hang the test.
GUARD_S = 1.0


def _most_in_any_minute(times: list[float]) -> int:
    """The most of `times` inside one half-open 60 s window [t, t + 60)."""
    times = sorted(times)
    return max(sum(1 for u in times[i:] if u < t + 60.0) for i, t in enumerate(times))


async def test_rpm_paces_one_request_per_interval(clock: FakeClock) -> None:
    limiter = RateLimiter(rpm=60, clock=clock)
    waits = [await limiter.acquire() for _ in range(4)]
    assert waits == [0.0, pytest.approx(1.0), pytest.approx(1.0), pytest.approx(1.0)]
    assert clock.now == pytest.approx(3.0)


async def test_a_quiet_spell_banks_no_burst(clock: FakeClock) -> None:
    """Callers that want far more than the RPM, in spells with quiet minutes between them:
    no 60 s window may hold more than the RPM (a bucket holding a minute let 2x through)."""
    limiter = RateLimiter(rpm=30, clock=clock)
    granted: list[float] = []
    for quiet_s in (0.0, 300.0, 45.0, 90.0):
        clock.advance(quiet_s)
        spell_end = clock.now + 100.0
        while clock.now < spell_end:
            await limiter.acquire()
            granted.append(clock.now)
    assert _most_in_any_minute(granted) == 30
    assert len(granted) >= 4 * 50  # and the limit is still used: one every 2 s while wanted


async def test_idle_time_lets_the_next_request_through_at_once(clock: FakeClock) -> None:
    limiter = RateLimiter(rpm=60, clock=clock)
    await limiter.acquire()
    clock.advance(30.0)
    assert await limiter.acquire() == 0.0
    assert await limiter.acquire() == pytest.approx(1.0)


async def test_tpm_paces_tokens(clock: FakeClock) -> None:
    limiter = RateLimiter(tpm=6000, clock=clock)  # 100 tokens per second
    assert await limiter.acquire(4000) == 0.0
    assert await limiter.acquire(2000) == pytest.approx(40.0)  # 4000 tokens' worth of time
    assert await limiter.acquire(500) == pytest.approx(20.0)
    assert clock.sleeps == [pytest.approx(40.0), pytest.approx(20.0)]


async def test_tpm_in_any_minute_stays_within_one_request_of_the_limit(clock: FakeClock) -> None:
    limiter = RateLimiter(tpm=6000, clock=clock)
    spent: list[tuple[float, int]] = []
    for i in range(200):
        if i % 50 == 0:
            clock.advance(120.0)
        tokens = 100 + (i * 37) % 400
        await limiter.acquire(tokens)
        spent.append((clock.now, tokens))
    most = max(sum(n for u, n in spent if t <= u < t + 60.0) for t, _ in spent)
    assert 6000 - 500 < most <= 6000 + 500


async def test_request_bigger_than_tpm_counts_as_the_whole_budget(clock: FakeClock) -> None:
    limiter = RateLimiter(tpm=600, clock=clock)  # 10 tokens per second
    assert await limiter.acquire(300) == 0.0
    waited = await asyncio.wait_for(limiter.acquire(10_000), GUARD_S)  # never fails, never hangs
    assert waited == pytest.approx(30.0)
    assert await limiter.acquire(1) == pytest.approx(60.0)


async def test_both_limits_apply_the_longer_wait(clock: FakeClock) -> None:
    limiter = RateLimiter(rpm=60, tpm=600, clock=clock)
    assert await limiter.acquire(50) == 0.0
    assert await limiter.acquire(50) == pytest.approx(5.0)  # tokens bind, not requests
    assert await limiter.acquire(1) == pytest.approx(5.0)
    assert await limiter.acquire(1) == pytest.approx(1.0)  # requests bind, not tokens


async def test_unlimited_never_waits(clock: FakeClock) -> None:
    limiter = RateLimiter(clock=clock)
    assert [await limiter.acquire(10**9) for _ in range(1000)] == [0.0] * 1000
    assert clock.sleeps == []


async def test_concurrent_waiters_are_served_in_turn(clock: FakeClock) -> None:
    limiter = RateLimiter(rpm=60, clock=clock)

    async def take() -> float:
        await limiter.acquire()
        return clock.now  # fake time at which this request was let through

    granted_at = await asyncio.gather(*(take() for _ in range(4)))
    assert granted_at == [0.0, pytest.approx(1.0), pytest.approx(2.0), pytest.approx(3.0)]
    assert clock.sleeps == [pytest.approx(1.0)] * 3


def test_invalid_limits_rejected() -> None:
    with pytest.raises(ValueError):
        RateLimiter(rpm=0)
    with pytest.raises(ValueError):
        asyncio.run(RateLimiter(rpm=1).acquire(-1))


async def test_rate_limited_model_reports_waits(
    clock: FakeClock, hooks: RecordingHooks, request_: ChatRequest
) -> None:
    inner = ScriptedModel(sequence(["ok"]), model_id="cheap")
    model = LimitedModel(inner, limiter=RateLimiter(rpm=2, clock=clock), hooks=hooks)
    for _ in range(2):
        assert (await model.complete(request_)).text == "ok"
    assert inner.calls == 2
    assert model.model_id == "cheap"
    assert hooks.waits == [RateLimitWait("cheap", pytest.approx(30.0))]  # type: ignore[arg-type]


async def test_rate_limited_model_uses_the_estimate(clock: FakeClock, request_: ChatRequest) -> None:
    limiter = RateLimiter(tpm=60, clock=clock)  # 1 token per second
    model = LimitedModel(ScriptedModel(sequence(["ok"])), limiter=limiter, estimate_tokens=lambda _: 45)
    await model.complete(request_)
    await model.complete(request_)
    assert clock.sleeps == [pytest.approx(45.0)]  # the first call's 45 estimated tokens


def test_token_estimate_counts_prompt_and_completion_allowance() -> None:
    request = ChatRequest(messages=[Message("system", "x" * 400), Message("user", "y" * 400)], max_tokens=500)
    assert estimate_request_tokens(request) == 200 + 1 + 500


async def test_concurrency_never_exceeds_the_limit(request_: ChatRequest) -> None:
    in_flight = 0
    peak = 0

    async def busy(request: ChatRequest) -> str:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        for _ in range(5):
            await asyncio.sleep(0)
        in_flight -= 1
        return "ok"

    inner = ScriptedModel(busy)
    limited = LimitedModel(inner, semaphore=asyncio.Semaphore(3))
    results = await asyncio.gather(*(limited.complete(request_) for _ in range(20)))
    assert [r.text for r in results] == ["ok"] * 20
    assert peak == 3

    peak = 0  # control: without the limiter all 20 overlap, so the assertion above can fail
    await asyncio.gather(*(inner.complete(request_) for _ in range(20)))
    assert peak == 20


async def _hang(_: ChatRequest) -> str:
    await asyncio.Event().wait()
    return "never"


async def test_request_timeout_maps_to_provider_timeout(request_: ChatRequest) -> None:
    model = LimitedModel(ScriptedModel(_hang, model_id="slow"), default_timeout_s=60.0)
    with pytest.raises(ProviderTimeout) as caught:
        await asyncio.wait_for(
            model.complete(ChatRequest(messages=request_.messages, timeout_s=0.005)), GUARD_S
        )
    assert caught.value.model == "slow"
    assert caught.value.retryable
    assert isinstance(caught.value.__cause__, TimeoutError)


async def test_default_timeout_applies_when_request_has_none(request_: ChatRequest) -> None:
    model = LimitedModel(ScriptedModel(_hang), default_timeout_s=0.005)
    with pytest.raises(ProviderTimeout):
        await asyncio.wait_for(model.complete(request_), GUARD_S)


async def test_no_timeout_passes_through(request_: ChatRequest) -> None:
    model = LimitedModel(ScriptedModel(sequence(["fast"])))
    assert (await model.complete(request_)).text == "fast"


async def test_inner_provider_errors_pass_through_timeout(request_: ChatRequest) -> None:
    error = ProviderError("boom")
    model = LimitedModel(ScriptedModel(sequence([error])), default_timeout_s=1.0)
    with pytest.raises(ProviderError) as caught:
        await model.complete(request_)
    assert caught.value is error


async def test_queueing_for_a_slot_is_not_charged_to_the_timeout(request_: ChatRequest) -> None:
    """The timeout bounds the call on the wire, not the wait for a slot among calls in flight."""
    release = asyncio.Event()

    async def slow_then_fast(request: ChatRequest) -> str:
        if request.messages[-1].content == "first":
            await release.wait()
        return "done"

    model = LimitedModel(ScriptedModel(slow_then_fast), semaphore=asyncio.Semaphore(1))
    first = asyncio.ensure_future(model.complete(ChatRequest([Message("user", "first")])))
    await asyncio.sleep(0)
    second = asyncio.ensure_future(model.complete(ChatRequest([Message("user", "second")], timeout_s=0.05)))
    await asyncio.sleep(0.1)  # the second waited twice its timeout for the slot, never on the wire
    release.set()
    assert (await asyncio.wait_for(first, GUARD_S)).text == "done"
    assert (await asyncio.wait_for(second, GUARD_S)).text == "done"
