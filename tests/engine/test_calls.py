"""A course's metered calls: the fallback chain moves on at provider errors *and* bad answers,
and every model tried is reserved, settled and recorded on the ledger (engine.calls)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from courseforge.domain.tasks import TaskId
from courseforge.engine import CourseCalls, Runtime
from courseforge.engine.reasoning import ReasoningBudgets, plan_reasoning
from courseforge.errors import BadResponse, BudgetExceeded, CircuitOpen, ProviderHTTPError
from courseforge.ledger import Ledger, estimate_input_tokens, worst_case_cost
from courseforge.providers import ChatModel, ChatRequest, Message
from courseforge.providers.effects import CallSpec
from courseforge.providers.embeddings import HashingEmbedder
from courseforge.resilience import (
    BREAKER_FLAKY_COOLDOWN_S,
    BreakerPolicy,
    BreakerRegistry,
    FakeClock,
    FallbackTaken,
    RecordingHooks,
    StructuredOutputModel,
)
from courseforge.testing import ScriptedModel, sequence
from engine_helpers import hosted_settings

SETTINGS = hosted_settings()
SCHEMA = {
    "type": "object",
    "required": ["answer"],
    "properties": {"answer": {"type": "string", "minLength": 2}},
}
GOOD = '{"answer": "forty-two"}'


def checked(answers: list[Any], model_id: str) -> StructuredOutputModel:
    return StructuredOutputModel(ScriptedModel(sequence(answers), model_id=model_id))


def request() -> ChatRequest:
    return ChatRequest([Message("user", "q")], json_schema=SCHEMA, max_tokens=100)


def spec(tier: str = "premium") -> CallSpec:
    return CallSpec("lessons", TaskId.lesson_task("S1-L1"), tier, 1, request())


def calls(primary: str, chain: list[ChatModel], cap: str = "1", **runtime: Any) -> tuple[CourseCalls, Ledger]:
    ledger = Ledger(Decimal(cap))
    rt = Runtime(chains={primary: chain}, embedder=HashingEmbedder(), **runtime)
    return CourseCalls(SETTINGS, rt, ledger), ledger


def worst(model_id: str) -> Decimal:
    """A call's reservation: the answer's budget plus, for a reasoning model, its thinking's."""
    ms = SETTINGS.models[model_id]
    r = plan_reasoning(ms, model_id, "lesson", "lessons", request(), ReasoningBudgets()).request
    return worst_case_cost(ms, estimate_input_tokens(r.messages), r.max_tokens)


@pytest.mark.parametrize(
    "bad",
    ["", "not json at all", '{"answer": 7}', '{"other": "x"}'],
    ids=["empty", "unparseable", "wrong_type", "missing_key"],
)
async def test_moves_on_at_errors_and_bad_content(bad: Any) -> None:
    # Up the price list, a fallback answers bad content too (the chain of a cheap model).
    hooks = RecordingHooks()
    course, ledger = calls(
        "gpt-oss-20b", [checked([bad], "gpt-oss-20b"), checked([GOOD], "gpt-oss-120b")], hooks=hooks
    )
    result = await course.call(spec("cheap"))
    assert result.response.text == GOOD
    assert [(r.model, r.outcome) for r in ledger.records] == [
        ("gpt-oss-20b", "rejected"),
        ("gpt-oss-120b", "ok"),
    ]
    assert result.record is ledger.records[-1] and result.record.reason == "fallback for gpt-oss-20b"
    assert ledger.records[0].cost_usd > 0  # bad answers were billed
    assert ledger.spent == sum((r.cost_usd for r in ledger.records), Decimal(0))
    assert ledger.committed == ledger.spent  # no reservation left behind
    assert [(e.model_id, e.to_model) for e in hooks.of_type(FallbackTaken)] == [
        ("gpt-oss-20b", "gpt-oss-120b")
    ]


async def test_a_weaker_fallback_answers_only_when_the_primary_is_unavailable() -> None:
    # Seed 001: "fallback OSS 120B if qwen3-max rate limited or unavailable" -- marked, so the
    # cascade flags the answer for review.
    course, ledger = calls(
        "qwen3-max", [checked([ProviderHTTPError(503, "down")], "qwen3-max"), checked([GOOD], "gpt-oss-120b")]
    )
    result = await course.call(spec())
    assert [(r.model, r.outcome) for r in ledger.records] == [("qwen3-max", "error"), ("gpt-oss-120b", "ok")]
    assert result.record.reason == "weaker fallback for qwen3-max (unavailable)"


@pytest.mark.parametrize("bad", ["", "not json at all", '{"answer": 7}', '{"other": "x"}'])
async def test_bad_content_never_falls_down_to_a_weaker_model(bad: str) -> None:
    # Seed 000: "never escalate down". The premium model answered, badly: the weaker fallback is
    # not asked; the error goes to the cascade (which retries or escalates, never down).
    fallback = checked([GOOD], "gpt-oss-120b")
    course, ledger = calls("qwen3-max", [checked([bad], "qwen3-max"), fallback])
    with pytest.raises(BadResponse):
        await course.call(spec())
    assert fallback.inner.calls == 0  # type: ignore[attr-defined]
    assert [(r.model, r.outcome) for r in ledger.records] == [("qwen3-max", "rejected")]


async def test_every_model_failing_raises_the_last_error_naming_the_chain() -> None:
    chain: list[ChatModel] = [
        checked([ProviderHTTPError(502, "x")], "qwen3-max"),
        checked([""], "gpt-oss-120b"),
        checked(["{}"], "gpt-oss-20b"),
    ]
    course, ledger = calls("qwen3-max", chain)
    with pytest.raises(BadResponse) as caught:
        await course.call(spec())
    assert caught.value.kind == "schema"
    assert "qwen3-max -> gpt-oss-120b -> gpt-oss-20b" in "".join(caught.value.__notes__)
    assert [(r.model, r.outcome) for r in ledger.records] == [
        ("qwen3-max", "error"),
        ("gpt-oss-120b", "rejected"),
        ("gpt-oss-20b", "rejected"),
    ]


async def test_budget_blocks_the_primary_at_once_and_skips_a_fallback() -> None:
    primary, fallback = checked([GOOD], "qwen3-max"), checked([GOOD], "gpt-oss-120b")
    course, ledger = calls("qwen3-max", [primary, fallback], cap=str(worst("qwen3-max") / 2))
    with pytest.raises(BudgetExceeded):
        await course.call(spec())
    assert primary.inner.calls == 0 and fallback.inner.calls == 0  # type: ignore[attr-defined]
    assert [(r.model, r.outcome) for r in ledger.records] == [("qwen3-max", "budget_blocked")]

    # A cheap primary fails; the expensive fallback does not fit and is skipped; the cheap one answers.
    cap = worst("gpt-oss-20b") + worst("gpt-oss-120b")
    assert cap < worst("qwen3-max")
    chain: list[ChatModel] = [
        checked([ProviderHTTPError(503, "down")], "gpt-oss-20b"),
        checked([GOOD], "qwen3-max"),
        checked([GOOD], "gpt-oss-120b"),
    ]
    course, ledger = calls("gpt-oss-20b", chain, cap=str(cap))
    result = await course.call(spec("cheap"))
    assert result.response.text == GOOD
    assert [(r.model, r.outcome) for r in ledger.records] == [
        ("gpt-oss-20b", "error"),
        ("qwen3-max", "budget_blocked"),
        ("gpt-oss-120b", "ok"),
    ]
    assert ledger.peak_committed <= ledger.cap_usd


async def test_a_call_whose_whole_chain_is_open_waits_for_the_probe() -> None:
    clock = FakeClock()
    # Three failures with nothing else in the window say "down" here (seed 001's breaker).
    breakers = BreakerRegistry(clock=clock, policy=BreakerPolicy(cooldown_s=10.0, min_calls=3))
    models: list[ChatModel] = [
        breakers.wrap(ScriptedModel(lambda r: GOOD, model_id=m)) for m in ("qwen3-max", "gpt-oss-120b")
    ]

    def open_both() -> None:
        for m in ("qwen3-max", "gpt-oss-120b"):
            breaker = breakers.breaker(m)
            for _ in range(3):
                permit = breaker.allow()
                if permit is not None:
                    breaker.record_failure(permit)

    open_both()
    clock.advance(4.0)  # both reopen in 6 s
    course, ledger = calls("qwen3-max", models, clock=clock, open_wait_s=10.0)
    assert (await course.call(spec())).response.text == GOOD
    assert clock.sleeps == [6.0]
    assert breakers.breaker("qwen3-max").state == "closed"  # the probe went to the primary
    assert [(r.model, r.outcome) for r in ledger.records] == [
        ("qwen3-max", "skipped"),
        ("gpt-oss-120b", "skipped"),
        ("qwen3-max", "ok"),
    ]

    open_both()
    impatient, _ = calls("qwen3-max", models, clock=clock, open_wait_s=0.0)
    with pytest.raises(CircuitOpen):
        await impatient.call(spec())


def _feed(breakers: BreakerRegistry, model_id: str, pattern: str) -> None:
    """Outcomes on a model's breaker: "x" a failure, "." a success."""
    breaker = breakers.breaker(model_id)
    for c in pattern:
        permit = breaker.allow()
        assert permit is not None
        (breaker.record_failure if c == "x" else breaker.record_success)(permit)


async def test_a_flaky_chain_is_sent_again_to_the_model_that_succeeds_most() -> None:
    """Issue 19: every model of the chain skipped by a *flaky* breaker (same provider): no wait
    for a cooldown; a short backoff, then the call is forced through to the best model."""
    clock, hooks = FakeClock(), RecordingHooks()
    breakers = BreakerRegistry(clock=clock)
    models: list[ChatModel] = [
        breakers.wrap(ScriptedModel(lambda r: GOOD, model_id=m)) for m in ("qwen3-max", "gpt-oss-120b")
    ]
    _feed(breakers, "qwen3-max", "..xxx")  # 60 % failed lately
    _feed(breakers, "gpt-oss-120b", "......xxx")  # 33 % failed: it still succeeds most
    assert {breakers.breaker(m).snapshot().health for m in ("qwen3-max", "gpt-oss-120b")} == {"flaky"}
    course, ledger = calls(
        "qwen3-max", models, clock=clock, open_wait_s=60.0, hooks=hooks, success_rate=breakers.success_rate
    )
    result = await course.call(spec())
    assert result.response.text == GOOD
    assert [(r.model, r.outcome) for r in ledger.records] == [
        ("qwen3-max", "skipped"),
        ("gpt-oss-120b", "skipped"),
        ("gpt-oss-120b", "ok"),
    ]
    assert result.record.reason == "weaker fallback for qwen3-max (unavailable)"
    assert clock.sleeps == []  # sent again at once: no cooldown waited
    assert breakers.breaker("gpt-oss-120b").state == "closed"  # the forced answer closed it
    assert breakers.breaker("qwen3-max").state == "open"


async def test_a_chain_with_a_down_model_still_waits_for_its_probe() -> None:
    clock = FakeClock()
    breakers = BreakerRegistry(clock=clock, policy=BreakerPolicy(min_calls=3))
    models: list[ChatModel] = [
        breakers.wrap(ScriptedModel(lambda r: GOOD, model_id=m)) for m in ("qwen3-max", "gpt-oss-120b")
    ]
    _feed(breakers, "qwen3-max", "xxx")  # down
    _feed(breakers, "gpt-oss-120b", "......xxx")  # flaky
    course, ledger = calls(
        "qwen3-max", models, clock=clock, open_wait_s=60.0, success_rate=breakers.success_rate
    )
    assert (await course.call(spec())).response.text == GOOD
    # Waited for the soonest probe (the flaky model's 1 s cooldown), no forced send (seed rule).
    assert clock.sleeps == [BREAKER_FLAKY_COOLDOWN_S]
    assert [r.outcome for r in ledger.records][:2] == ["skipped", "skipped"]
