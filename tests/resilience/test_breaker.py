from __future__ import annotations

import asyncio

import pytest

from courseforge.errors import BadResponse, CircuitOpen, ProviderError, ProviderHTTPError, ProviderTimeout
from courseforge.providers.base import ChatRequest
from courseforge.resilience import (
    BREAKER_COOLDOWN_S,
    BreakerRegistry,
    BreakerSnapshot,
    BreakerTransition,
    BreakingModel,
    CircuitBreaker,
    FakeClock,
    RecordingHooks,
    counts_as_outage,
)
from courseforge.testing import ScriptedModel, sequence
from courseforge.testing.scripted import Answer

DOWN = ProviderHTTPError(503, "down", model="m")
#: Upper bound on real waiting where a bug would otherwise hang the test.
GUARD_S = 1.0


def _model(
    answers: list[Answer], clock: FakeClock, hooks: RecordingHooks
) -> tuple[ScriptedModel, BreakingModel]:
    inner = ScriptedModel(sequence(answers), model_id="m")
    return inner, BreakingModel(inner, CircuitBreaker(model_id="m", clock=clock, hooks=hooks))


async def _fail(model: BreakingModel, request: ChatRequest, times: int) -> None:
    for _ in range(times):
        with pytest.raises(ProviderHTTPError):
            await model.complete(request)


async def test_three_failures_open_and_calls_skip_the_model(
    clock: FakeClock, hooks: RecordingHooks, request_: ChatRequest
) -> None:
    inner, model = _model([DOWN], clock, hooks)
    await _fail(model, request_, 2)
    assert model.breaker.state == "closed"
    await _fail(model, request_, 1)
    assert model.breaker.state == "open"
    assert hooks.transitions == [BreakerTransition("m", "closed", "open")]

    clock.advance(20.0)
    with pytest.raises(CircuitOpen) as caught:
        await model.complete(request_)
    assert inner.calls == 3  # not called while open
    assert caught.value.model == "m"
    assert caught.value.reopens_in_s == pytest.approx(BREAKER_COOLDOWN_S - 20.0)
    assert model.breaker.snapshot() == BreakerSnapshot("open", 3, 0.0, BREAKER_COOLDOWN_S - 20.0, opens=1)


async def test_half_open_probe_success_closes(
    clock: FakeClock, hooks: RecordingHooks, request_: ChatRequest
) -> None:
    inner, model = _model([DOWN, DOWN, DOWN, "recovered"], clock, hooks)
    await _fail(model, request_, 3)
    clock.advance(BREAKER_COOLDOWN_S - 0.001)
    assert model.breaker.state == "open"
    clock.advance(0.001)
    assert model.breaker.state == "half_open"

    assert (await model.complete(request_)).text == "recovered"
    assert inner.calls == 4
    assert model.breaker.snapshot() == BreakerSnapshot("closed", 0, 0.0, 0.0, opens=1)
    assert [(t.old, t.new) for t in hooks.transitions] == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]


async def test_half_open_probe_failure_reopens(
    clock: FakeClock, hooks: RecordingHooks, request_: ChatRequest
) -> None:
    inner, model = _model([DOWN], clock, hooks)
    await _fail(model, request_, 3)
    clock.advance(BREAKER_COOLDOWN_S)
    await _fail(model, request_, 1)  # the probe
    assert inner.calls == 4
    snap = model.breaker.snapshot()
    assert (snap.state, snap.opened_at, snap.reopens_in_s) == ("open", BREAKER_COOLDOWN_S, BREAKER_COOLDOWN_S)
    with pytest.raises(CircuitOpen):
        await model.complete(request_)
    assert inner.calls == 4
    assert [t.new for t in hooks.transitions] == ["open", "half_open", "open"]


async def test_only_one_probe_at_a_time(clock: FakeClock, request_: ChatRequest) -> None:
    release = asyncio.Event()

    failures_left = 3

    async def script(_: ChatRequest) -> Answer:
        nonlocal failures_left
        if failures_left:
            failures_left -= 1
            return DOWN
        await release.wait()
        return "ok"

    inner = ScriptedModel(script, model_id="m")
    model = BreakingModel(inner, CircuitBreaker(clock=clock))
    await _fail(model, request_, 3)
    clock.advance(BREAKER_COOLDOWN_S)

    probe = asyncio.create_task(model.complete(request_))
    await asyncio.sleep(0)
    assert inner.calls == 4
    with pytest.raises(CircuitOpen) as caught:
        # refused while the probe is in flight (wait_for: a broken breaker fails, not hangs)
        await asyncio.wait_for(model.complete(request_), GUARD_S)
    assert caught.value.reopens_in_s == 0.0
    assert inner.calls == 4

    release.set()
    assert (await probe).text == "ok"
    assert model.breaker.state == "closed"


async def test_cancelled_probe_frees_the_slot(clock: FakeClock, request_: ChatRequest) -> None:
    breaker = CircuitBreaker(clock=clock, failure_threshold=1)
    permit = breaker.allow()
    assert permit is not None
    breaker.record_failure(permit)
    clock.advance(BREAKER_COOLDOWN_S)

    async def hang(_: ChatRequest) -> str:
        await asyncio.Event().wait()
        return "never"

    model = BreakingModel(ScriptedModel(hang), breaker)
    probe = asyncio.create_task(model.complete(request_))
    await asyncio.sleep(0)
    assert breaker.allow() is None
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe
    assert breaker.state == "half_open"
    next_probe = breaker.allow()
    assert next_probe is not None and next_probe.probe


async def test_content_problems_do_not_count(
    clock: FakeClock, hooks: RecordingHooks, request_: ChatRequest
) -> None:
    schema_bad = BadResponse("missing field", kind="schema", model="m")
    inner, model = _model(
        [DOWN, DOWN, schema_bad, DOWN, DOWN, schema_bad, schema_bad, schema_bad], clock, hooks
    )
    for _ in range(8):
        with pytest.raises(ProviderError):
            await model.complete(request_)
    assert inner.calls == 8
    assert model.breaker.state == "closed"  # a schema-invalid answer resets the streak
    assert hooks.transitions == []


@pytest.mark.parametrize(
    ("error", "counts"),
    [
        (ProviderHTTPError(503, ""), True),
        (ProviderHTTPError(401, ""), True),
        (ProviderTimeout("slow"), True),
        (BadResponse("", kind="empty"), True),
        (BadResponse("", kind="unparseable"), True),
        (BadResponse("", kind="schema"), False),
        (BadResponse("", kind="truncated"), False),
        (CircuitOpen(model="m", reopens_in_s=1.0), False),
        (ValueError("our bug"), False),
    ],
)
def test_counts_as_outage(error: BaseException, counts: bool) -> None:
    assert counts_as_outage(error) is counts


def test_stale_outcomes_are_ignored(clock: FakeClock) -> None:
    """A call let through before the breaker opened cannot move it when it finally returns."""
    breaker = CircuitBreaker(clock=clock)
    straggler = breaker.allow()
    assert straggler is not None
    for _ in range(3):
        permit = breaker.allow()
        assert permit is not None
        breaker.record_failure(permit)
    assert breaker.state == "open"
    breaker.record_failure(straggler)
    breaker.record_success(straggler)
    assert breaker.snapshot() == BreakerSnapshot("open", 3, 0.0, BREAKER_COOLDOWN_S, opens=1)

    clock.advance(BREAKER_COOLDOWN_S)
    probe = breaker.allow()
    assert probe is not None and probe.probe
    breaker.record_success(straggler)
    assert breaker.state == "half_open"


def test_registry_shares_one_breaker_per_model(clock: FakeClock, hooks: RecordingHooks) -> None:
    registry = BreakerRegistry(failure_threshold=1, cooldown_s=5.0, clock=clock, hooks=hooks)
    a1 = registry.wrap(ScriptedModel(sequence(["x"]), model_id="a"))
    a2 = registry.wrap(ScriptedModel(sequence(["y"]), model_id="a"))
    b = registry.wrap(ScriptedModel(sequence(["z"]), model_id="b"))
    assert a1.breaker is a2.breaker is registry.breaker("a")
    assert b.breaker is not a1.breaker

    permit = a1.breaker.allow()
    assert permit is not None
    a1.breaker.record_failure(permit)
    assert registry.snapshots() == {
        "a": BreakerSnapshot("open", 1, 0.0, 5.0, opens=1),
        "b": BreakerSnapshot("closed", 0, None, 0.0),
    }
    assert hooks.transitions == [BreakerTransition("a", "closed", "open")]


def test_invalid_settings_rejected() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(failure_threshold=0)
    with pytest.raises(ValueError):
        CircuitBreaker(cooldown_s=-1)
