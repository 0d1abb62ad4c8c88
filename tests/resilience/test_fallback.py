"""Fallback chains move on at provider errors *and* bad answers; every try is metered."""

from __future__ import annotations

from typing import Any

import pytest

from courseforge.errors import BadResponse, BudgetExceeded, ProviderHTTPError
from courseforge.providers import ChatRequest, ChatResponse, Message
from courseforge.resilience import (
    FallbackModel,
    FallbackTaken,
    RecordingHooks,
    StructuredOutputModel,
    call_metered,
)
from courseforge.testing import ScriptedModel, sequence

SCHEMA = {
    "type": "object",
    "required": ["answer"],
    "properties": {"answer": {"type": "string", "minLength": 2}},
}
GOOD = '{"answer": "forty-two"}'


class RecordingMeter:
    """A meter that keeps (model, outcome) per try and can refuse chosen models' budgets."""

    def __init__(self, *, broke: tuple[str, ...] = ()) -> None:
        self.tries: list[tuple[str, str]] = []
        self._broke = broke

    def begin(self, model_id: str, request: ChatRequest) -> object:
        if model_id in self._broke:
            self.tries.append((model_id, "budget_blocked"))
            raise BudgetExceeded(cap_usd=1, committed_usd=1, needed_usd=1)
        return model_id

    def end(
        self, ticket: object, *, response: ChatResponse | None = None, error: BaseException | None = None
    ) -> None:
        if response is not None:
            self.tries.append((str(ticket), "ok"))
        else:
            billed = getattr(error, "usage", None) is not None
            self.tries.append((str(ticket), "rejected" if billed else "error"))


def checked(answers: list[Any], model_id: str) -> StructuredOutputModel:
    return StructuredOutputModel(ScriptedModel(sequence(answers), model_id=model_id))


def request() -> ChatRequest:
    return ChatRequest([Message("user", "q")], json_schema=SCHEMA)


@pytest.mark.parametrize(
    "bad",
    [ProviderHTTPError(503, "down"), "", "not json at all", '{"answer": 7}', '{"other": "x"}'],
    ids=["http_503", "empty", "unparseable", "wrong_type", "missing_key"],
)
async def test_moves_on_at_errors_and_bad_content(bad: Any) -> None:
    hooks = RecordingHooks()
    chain = FallbackModel([checked([bad], "qwen3-max"), checked([GOOD], "gpt-oss-120b")], hooks=hooks)
    meter = RecordingMeter()
    response = await call_metered(chain, request(), meter)
    assert response.text == GOOD
    first = "error" if isinstance(bad, Exception) else "rejected"  # bad answers were billed
    assert meter.tries == [("qwen3-max", first), ("gpt-oss-120b", "ok")]
    assert [(e.model_id, e.to_model) for e in hooks.of_type(FallbackTaken)] == [("qwen3-max", "gpt-oss-120b")]


async def test_every_model_failing_raises_the_last_error_naming_the_chain() -> None:
    chain = FallbackModel(
        [checked([ProviderHTTPError(502, "x")], "a"), checked([""], "b"), checked(["{}"], "c")]
    )
    meter = RecordingMeter()
    with pytest.raises(BadResponse) as caught:
        await call_metered(chain, request(), meter)
    assert caught.value.kind == "schema"
    assert "a -> b -> c" in "".join(caught.value.__notes__)
    assert [t[0] for t in meter.tries] == ["a", "b", "c"]


async def test_budget_blocks_the_primary_at_once_and_skips_a_fallback() -> None:
    primary, fallback, last = checked([GOOD], "a"), checked([GOOD], "b"), checked([GOOD], "c")
    with pytest.raises(BudgetExceeded):
        await call_metered(FallbackModel([primary, fallback]), request(), RecordingMeter(broke=("a",)))
    assert primary.inner.calls == 0  # type: ignore[attr-defined]

    failing = checked([ProviderHTTPError(503, "down")], "a2")
    meter = RecordingMeter(broke=("b",))
    response = await call_metered(FallbackModel([failing, fallback, last]), request(), meter)
    assert response.text == GOOD
    assert meter.tries == [("a2", "error"), ("b", "budget_blocked"), ("c", "ok")]


async def test_a_call_whose_whole_chain_is_open_waits_for_the_probe() -> None:
    from courseforge.resilience import BreakerRegistry, FakeClock

    clock = FakeClock()
    breakers = BreakerRegistry(clock=clock, cooldown_s=10.0)
    models = [breakers.wrap(ScriptedModel(lambda r: GOOD, model_id=m)) for m in ("a", "b")]
    for m in ("a", "b"):
        breaker = breakers.breaker(m)
        for _ in range(3):
            permit = breaker.allow()
            assert permit is not None
            breaker.record_failure(permit)
    clock.advance(4.0)  # a and b reopen in 6 s
    chain = FallbackModel(models, max_open_wait_s=10.0, clock=clock)
    assert (await chain.complete(request())).text == GOOD
    assert clock.sleeps == [6.0]
    assert breakers.breaker("a").state == "closed"  # the probe went to the primary

    impatient = FallbackModel(models, max_open_wait_s=0.0, clock=clock)
    for m in ("a", "b"):
        breaker = breakers.breaker(m)
        for _ in range(3):
            permit = breaker.allow()
            if permit is not None:
                breaker.record_failure(permit)
    from courseforge.errors import CircuitOpen

    with pytest.raises(CircuitOpen):
        await impatient.complete(request())
