from __future__ import annotations

import asyncio

import pytest

from courseforge.errors import BadResponse, CircuitOpen, ProviderError, ProviderHTTPError, ProviderTimeout
from courseforge.providers.base import ChatRequest
from courseforge.resilience import (
    BREAKER_COOLDOWN_S,
    BREAKER_FLAKY_COOLDOWN_S,
    BREAKER_HALF_OPEN_PROBES,
    FORCE_TAG,
    BreakerPolicy,
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


def _core(snap: BreakerSnapshot) -> tuple[object, ...]:
    """The state-machine fields of a snapshot (the window's figures are tested apart)."""
    return (snap.state, snap.consecutive_failures, snap.opened_at, snap.reopens_in_s, snap.opens)


#: Seed 001's breaker, as the state-machine tests below exercise it: three failures with nothing
#: else in the window already say "down" (the default policy wants ten outcomes for that).
SEED = BreakerPolicy(min_calls=3)


def _model(
    answers: list[Answer], clock: FakeClock, hooks: RecordingHooks, policy: BreakerPolicy = SEED
) -> tuple[ScriptedModel, BreakingModel]:
    inner = ScriptedModel(sequence(answers), model_id="m")
    return inner, BreakingModel(inner, CircuitBreaker(model_id="m", clock=clock, hooks=hooks, policy=policy))


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
    assert _core(model.breaker.snapshot()) == ("open", 3, 0.0, BREAKER_COOLDOWN_S - 20.0, 1)
    assert model.breaker.snapshot().health == "down"


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
    assert _core(model.breaker.snapshot()) == ("closed", 0, 0.0, 0.0, 1)
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


async def test_a_few_probes_at_a_time(clock: FakeClock, request_: ChatRequest) -> None:
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

    probes = [asyncio.create_task(model.complete(request_)) for _ in range(BREAKER_HALF_OPEN_PROBES)]
    await asyncio.sleep(0)
    assert inner.calls == 3 + BREAKER_HALF_OPEN_PROBES
    with pytest.raises(CircuitOpen) as caught:
        # refused while every probe slot is taken (wait_for: a broken breaker fails, not hangs)
        await asyncio.wait_for(model.complete(request_), GUARD_S)
    assert caught.value.reopens_in_s == 0.0
    assert inner.calls == 3 + BREAKER_HALF_OPEN_PROBES

    release.set()
    assert [(await p).text for p in probes] == ["ok"] * BREAKER_HALF_OPEN_PROBES
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
    probes = [asyncio.create_task(model.complete(request_)) for _ in range(BREAKER_HALF_OPEN_PROBES)]
    await asyncio.sleep(0)
    assert breaker.allow() is None
    probes[0].cancel()
    with pytest.raises(asyncio.CancelledError):
        await probes[0]
    assert breaker.state == "half_open"
    next_probe = breaker.allow()
    assert next_probe is not None and next_probe.probe
    for p in probes[1:]:
        p.cancel()
    await asyncio.gather(*probes[1:], return_exceptions=True)


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
        (ProviderHTTPError(502, ""), True),
        # About the request or the account, not the model's health (OpenRouter 400-403).
        (ProviderHTTPError(400, ""), False),
        (ProviderHTTPError(401, ""), False),
        (ProviderHTTPError(402, ""), False),
        (ProviderHTTPError(403, ""), False),
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
    # (The straggler in flight makes the opening "flaky"; one cooldown either way here.)
    breaker = CircuitBreaker(clock=clock, policy=BreakerPolicy(flaky_cooldown_s=BREAKER_COOLDOWN_S))
    straggler = breaker.allow()
    assert straggler is not None
    for _ in range(3):
        permit = breaker.allow()
        assert permit is not None
        breaker.record_failure(permit)
    assert breaker.state == "open"
    breaker.record_failure(straggler)
    breaker.record_success(straggler)
    assert _core(breaker.snapshot()) == ("open", 3, 0.0, BREAKER_COOLDOWN_S, 1)

    clock.advance(BREAKER_COOLDOWN_S)
    probe = breaker.allow()
    assert probe is not None and probe.probe
    breaker.record_success(straggler)
    assert breaker.state == "half_open"


def test_registry_shares_one_breaker_per_model(clock: FakeClock, hooks: RecordingHooks) -> None:
    registry = BreakerRegistry(
        clock=clock, hooks=hooks, policy=BreakerPolicy(failure_threshold=1, cooldown_s=5.0, min_calls=1)
    )
    a1 = registry.wrap(ScriptedModel(sequence(["x"]), model_id="a"))
    a2 = registry.wrap(ScriptedModel(sequence(["y"]), model_id="a"))
    b = registry.wrap(ScriptedModel(sequence(["z"]), model_id="b"))
    assert a1.breaker is a2.breaker is registry.breaker("a")
    assert b.breaker is not a1.breaker

    permit = a1.breaker.allow()
    assert permit is not None
    a1.breaker.record_failure(permit)
    snaps = registry.snapshots()
    assert {k: _core(v) for k, v in snaps.items()} == {
        "a": ("open", 1, 0.0, 5.0, 1),
        "b": ("closed", 0, None, 0.0, 0),
    }
    assert hooks.transitions == [BreakerTransition("a", "closed", "open")]


def test_invalid_settings_rejected() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(failure_threshold=0)
    with pytest.raises(ValueError):
        CircuitBreaker(cooldown_s=-1)


# -- down or flaky (issue 19) -----------------------------------------------------------------


def _outcomes(breaker: CircuitBreaker, pattern: str) -> None:
    """Feed outcomes: "x" a failure, "." a success (each on a fresh permit, when one is given)."""
    for c in pattern:
        permit = breaker.allow()
        assert permit is not None, f"refused before {pattern!r} was fed"
        if c == "x":
            breaker.record_failure(permit)
        else:
            breaker.record_success(permit)


def test_a_flaky_model_opens_for_a_short_cooldown(clock: FakeClock) -> None:
    breaker = CircuitBreaker(model_id="m", clock=clock)
    _outcomes(breaker, "..x..x.xxx")  # 5 of 10 failed, 3 in a row: flaky, not down
    snap = breaker.snapshot()
    assert (snap.state, snap.health) == ("open", "flaky")
    assert snap.cooldown_s == BREAKER_FLAKY_COOLDOWN_S < BREAKER_COOLDOWN_S
    assert (snap.failure_rate, snap.window_calls) == (0.5, 10)
    assert "3 consecutive failures" in snap.reason and "flaky" in snap.reason
    clock.advance(BREAKER_FLAKY_COOLDOWN_S)
    assert breaker.state == "half_open"


def test_a_flaky_cooldown_grows_while_failures_continue_and_resets_on_close(clock: FakeClock) -> None:
    breaker = CircuitBreaker(model_id="m", clock=clock)
    _outcomes(breaker, "......xxx")
    cooldowns = [breaker.snapshot().cooldown_s]
    for _ in range(3):  # each probe fails: the cooldown doubles
        clock.advance(breaker.reopens_in_s)
        _outcomes(breaker, "x")
        cooldowns.append(breaker.snapshot().cooldown_s)
    f = BREAKER_FLAKY_COOLDOWN_S
    assert cooldowns == [f, 2 * f, 4 * f, 8 * f]
    clock.advance(breaker.reopens_in_s)
    _outcomes(breaker, ".")  # a probe answers: closed, the next opening starts short again
    assert breaker.state == "closed"
    _outcomes(breaker, "......xxx")
    assert breaker.snapshot().cooldown_s == f


def test_the_flaky_cooldown_never_passes_the_down_one(clock: FakeClock) -> None:
    breaker = CircuitBreaker(
        clock=clock, policy=BreakerPolicy(cooldown_s=5.0, flaky_cooldown_s=2.0, window_calls=50)
    )
    _outcomes(breaker, "." * 30 + "xxx")
    for _ in range(4):
        clock.advance(breaker.reopens_in_s)
        _outcomes(breaker, "x")
    assert breaker.snapshot().cooldown_s == 5.0


def test_three_failures_alone_are_flaky_ten_mostly_failed_are_down(clock: FakeClock) -> None:
    breaker = CircuitBreaker(model_id="m", clock=clock, policy=BreakerPolicy(window_s=1000.0))
    _outcomes(breaker, "xxx")  # a fresh model's first three calls fail: not proof it is down
    assert breaker.snapshot().health == "flaky"
    cooldowns = [breaker.snapshot().cooldown_s]
    for _ in range(7):  # every probe fails too
        clock.advance(breaker.reopens_in_s)
        _outcomes(breaker, "x")
        cooldowns.append(breaker.snapshot().cooldown_s)
    f = BREAKER_FLAKY_COOLDOWN_S
    # 1, 2, 4, 8, 16, 32 s while flaky; the tenth failure in a row proves it down: the seed's 60 s
    assert cooldowns == [f, 2 * f, 4 * f, 8 * f, 16 * f, 32 * f, 60.0, 60.0]
    assert breaker.snapshot().health == "down" == breaker.health


def test_a_down_model_stays_down_after_its_window_ages_out(clock: FakeClock) -> None:
    breaker = CircuitBreaker(model_id="m", clock=clock, policy=SEED)
    _outcomes(breaker, "xxx")
    assert (breaker.snapshot().health, breaker.snapshot().cooldown_s) == ("down", BREAKER_COOLDOWN_S)
    clock.advance(BREAKER_COOLDOWN_S)  # the window (60 s) ages out during the cooldown
    _outcomes(breaker, "x")  # the probe fails: still down, not a fresh short cooldown
    assert (breaker.snapshot().health, breaker.snapshot().cooldown_s) == ("down", BREAKER_COOLDOWN_S)


def test_the_window_forgets_old_outcomes(clock: FakeClock) -> None:
    breaker = CircuitBreaker(clock=clock, policy=BreakerPolicy(window_s=10.0, window_calls=4))
    _outcomes(breaker, "x.x.")
    _outcomes(breaker, "..")  # only the last 4 count
    assert breaker.failure_rate() == (0.25, 4)
    clock.advance(10.5)
    assert breaker.failure_rate() == (0.0, 0)
    assert breaker.success_rate() == 1.0


def test_force_passes_a_flaky_open_breaker_but_never_a_down_one(clock: FakeClock) -> None:
    flaky = CircuitBreaker(clock=clock)
    _outcomes(flaky, "......xxx")
    assert flaky.allow() is None
    permit = flaky.allow(force=True)
    assert permit is not None and permit.forced
    flaky.record_success(permit)  # a forced call that answers closes it
    assert flaky.state == "closed"

    down = CircuitBreaker(clock=clock, policy=SEED)
    _outcomes(down, "xxx")
    assert down.snapshot().health == "down"
    assert down.allow(force=True) is None


async def test_forced_request_goes_through_breaking_model(clock: FakeClock, request_: ChatRequest) -> None:
    inner, model = _model(["ok"] * 6 + [DOWN, DOWN, DOWN, "recovered"], clock, RecordingHooks())
    for _ in range(6):
        await model.complete(request_)
    await _fail(model, request_, 3)
    with pytest.raises(CircuitOpen) as caught:
        await model.complete(request_)
    assert caught.value.down is False and "flaky" in caught.value.reason
    tagged = ChatRequest(request_.messages, max_tokens=100, tags={FORCE_TAG: "1"})
    assert (await model.complete(tagged)).text == "recovered"
    assert inner.calls == 10


async def test_provider_breaker_opens_only_when_its_models_look_down(
    clock: FakeClock, request_: ChatRequest
) -> None:
    registry = BreakerRegistry(clock=clock)
    a = registry.wrap(ScriptedModel(sequence([DOWN, "ok"]), model_id="a"), provider="p")
    b = registry.wrap(ScriptedModel(sequence([DOWN, "ok"]), model_id="b"), provider="p")
    # Three failures in a row across two models, but half the provider's calls answer: flaky.
    await _fail(a, request_, 1)
    assert (await a.complete(request_)).text == "ok"
    await _fail(b, request_, 1)
    assert (await b.complete(request_)).text == "ok"
    assert registry.provider_breaker("p").state == "closed"

    # Model breakers that never trip, so the provider's window alone decides.
    patient = BreakerRegistry(clock=clock, policy=BreakerPolicy(failure_threshold=100))
    down_a = patient.wrap(ScriptedModel(sequence([DOWN]), model_id="c"), provider="q")
    down_b = patient.wrap(ScriptedModel(sequence([DOWN]), model_id="d"), provider="q")
    for _ in range(4):
        await _fail(down_a, request_, 1)
        await _fail(down_b, request_, 1)
    assert patient.provider_breaker("q").state == "closed"  # 8 outcomes: not enough to judge
    await _fail(down_a, request_, 1)
    await _fail(down_b, request_, 1)
    registry = patient
    provider = registry.provider_breaker("q")
    assert (provider.state, provider.snapshot().health) == ("open", "down")
    fresh = registry.wrap(ScriptedModel(sequence(["never"]), model_id="e"), provider="q")
    with pytest.raises(CircuitOpen) as caught:
        await fresh.complete(request_)  # a model never called is refused: its provider is down
    assert caught.value.down and "provider provider:q" in caught.value.reason
    assert "provider:q" in registry.snapshots()


def test_fast_failures_among_calls_in_flight_are_flaky_not_down(clock: FakeClock) -> None:
    """Twenty calls start together; three 503s come back first (errors are fast), the other
    seventeen are still on their way: that is a flaky provider, not a down one."""
    breaker = CircuitBreaker(clock=clock)
    permits = [breaker.allow() for _ in range(20)]
    assert all(p is not None for p in permits)
    for p in permits[:3]:
        assert p is not None
        breaker.record_failure(p)
    snap = breaker.snapshot()
    assert (snap.state, snap.health, snap.cooldown_s) == ("open", "flaky", BREAKER_FLAKY_COOLDOWN_S)
