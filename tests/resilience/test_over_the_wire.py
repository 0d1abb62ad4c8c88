"""The resilience stack against the simulator over real loopback sockets (fake clock: no waiting).

openai-python's retry tests, our way: a route that fails N times then succeeds (N = 0, 2, 4);
a breaker that makes calls skip an open model and probes it after the cooldown; the budget
never passed with 50 calls in flight and retries.
"""

from __future__ import annotations

import asyncio
import random
from decimal import Decimal

import pytest

from courseforge.domain import CallRecord
from courseforge.domain.tasks import TaskId
from courseforge.errors import BudgetExceeded, ProviderError, ProviderHTTPError
from courseforge.ledger import Ledger
from courseforge.providers import ChatModel, ChatRequest, Message
from courseforge.providers.effects import CallSpec
from courseforge.providers.openai_compat import OpenAICompatModel
from courseforge.resilience import (
    BreakerRegistry,
    FakeClock,
    RecordingHooks,
    RetryingModel,
    StructuredOutputModel,
)
from courseforge.sim import FaultRates, ModelProfile, SimProfile, SimServer
from engine_helpers import course_calls, hosted_settings

SCHEMA = {"type": "object", "required": ["answer"], "properties": {"answer": {"type": "string"}}}
FAST = ModelProfile(ttft_ms=0, tokens_per_s=1e6, jitter=0)


def request(max_tokens: int = 200) -> ChatRequest:
    return ChatRequest([Message("user", "What is 6 x 7?")], json_schema=SCHEMA, max_tokens=max_tokens)


def wire(server: SimServer, model_id: str, name: str) -> OpenAICompatModel:
    return OpenAICompatModel(model_id=model_id, model_name=name, base_url=server.base_url)


@pytest.mark.parametrize("failures", [0, 2, 4])
async def test_route_fails_n_times_then_succeeds(failures: int) -> None:
    profile = SimProfile(defaults=FAST.model_copy(update={"fail_first": failures, "fail_first_status": 503}))
    clock, hooks = FakeClock(), RecordingHooks()
    async with SimServer(profile) as server:
        provider = wire(server, "m", "m")
        model = RetryingModel(provider, max_retries=4, clock=clock, rng=random.Random(1), hooks=hooks)
        response = await model.complete(request())
        await provider.aclose()
    assert response.text.startswith("{")
    assert server.stats["m", "fail_first"] == failures and server.stats["m", "ok"] == 1
    assert len(hooks.retries) == failures == len(clock.sleeps)
    assert hooks.fault_counts() == ({"http_503": failures} if failures else {})


async def test_more_failures_than_retries_raise_the_last_error() -> None:
    profile = SimProfile(defaults=FAST.model_copy(update={"fail_first": 5}))
    async with SimServer(profile) as server:
        provider = wire(server, "m", "m")
        model = RetryingModel(provider, max_retries=4, clock=FakeClock())
        with pytest.raises(ProviderHTTPError):
            await model.complete(request())
        await provider.aclose()
    assert server.stats["m", "fail_first"] == 5


async def test_calls_skip_an_open_model_and_probe_it_after_the_cooldown() -> None:
    # qwen fails its first 3 requests: the breaker opens, calls go to the fallback without
    # touching qwen, and after 60 s of (fake) cooldown one probe goes to qwen and closes it.
    profile = SimProfile(defaults=FAST, models={"qwen/qwen3-max": {"fail_first": 3}})
    clock, hooks = FakeClock(), RecordingHooks()
    breakers = BreakerRegistry(clock=clock, hooks=hooks)
    settings = hosted_settings()
    async with SimServer(profile) as server:
        providers: list[OpenAICompatModel] = []

        def stack(model_id: str) -> ChatModel:
            providers.append(wire(server, model_id, settings.models[model_id].name))
            inner = breakers.wrap(providers[-1])
            return StructuredOutputModel(RetryingModel(inner, max_retries=0, clock=clock))

        chain = [stack("qwen3-max"), stack("gpt-oss-120b")]
        ledger = Ledger(Decimal("1"))
        effects = course_calls(settings, {}, ledger, chains={"qwen3-max": chain})

        async def call(n: int) -> CallRecord:
            spec = CallSpec(
                phase="lessons",
                task=TaskId.lesson_task(f"t{n}"),
                tier="premium",
                attempt=1,
                request=request(),
            )
            return (await effects.call(spec)).record

        for n in range(3):
            assert (await call(n)).model == "gpt-oss-120b"
        assert breakers.breaker("qwen3-max").state == "open"
        skipped = await call(3)
        assert (
            skipped.model == "gpt-oss-120b"
            and skipped.reason == "weaker fallback for qwen3-max (unavailable)"
        )
        assert server.stats["qwen/qwen3-max", "fail_first"] == 3 and server.stats["qwen/qwen3-max", "ok"] == 0

        clock.advance(60.0)
        assert breakers.breaker("qwen3-max").state == "half_open"
        probed = await call(4)
        assert probed.model == "qwen3-max" and probed.reason == ""
        assert breakers.breaker("qwen3-max").state == "closed"
        assert breakers.breaker("qwen3-max").snapshot().opens == 1
        for provider in providers:
            await provider.aclose()
    assert server.stats["qwen/qwen3-max", "ok"] == 1
    outcomes = [(r.task, r.model, r.outcome) for r in ledger.records]
    assert ("lesson:t3", "qwen3-max", "skipped") in outcomes  # the skip is on the record, free
    assert [t.new for t in hooks.transitions] == ["open", "half_open", "closed"]


async def test_budget_never_exceeded_with_50_calls_in_flight_and_retries() -> None:
    # 30 % 429s and 20 % 503s, retried (no real waiting); 50 calls at once on a cap that fits
    # only some of them: spent + reserved never passes the cap, and the rest are blocked.
    faults = FaultRates(rate_limited=0.3, server_error=0.2)
    profile = SimProfile(defaults=ModelProfile(ttft_ms=20, tokens_per_s=2000, jitter=0.5, faults=faults))
    settings = hosted_settings()
    price = settings.models["gpt-oss-120b"]
    async with SimServer(profile, seed=3, time_scale=1.0) as server:
        provider = wire(server, "gpt-oss-120b", price.name)
        model = StructuredOutputModel(RetryingModel(provider, max_retries=4, clock=FakeClock()))
        cap = Decimal("0.01")  # fits 14 worst cases of 0.00068 at once
        ledger = Ledger(cap)
        effects = course_calls(settings, {"gpt-oss-120b": model}, ledger)

        async def call(n: int) -> str:
            spec = CallSpec(
                phase="lessons",
                task=TaskId.lesson_task(f"t{n}"),
                tier="mid",
                attempt=1,
                request=request(4000),
            )
            try:
                await effects.call(spec)
            except BudgetExceeded:
                return "blocked"
            except ProviderError as exc:
                return f"failed {exc!r}"
            return "ok"

        results = await asyncio.gather(*(call(n) for n in range(50)))
        await provider.aclose()
    assert ledger.peak_committed <= cap
    assert ledger.spent <= cap
    assert ledger.spent == sum((r.cost_usd for r in ledger.records), Decimal(0))
    assert "ok" in results and "blocked" in results, results
    assert server.fault_counts().get("rate_limited", 0) > 0  # retries really happened
