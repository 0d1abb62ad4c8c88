"""Reasoning models (engine.reasoning): the effort per task kind, max_tokens = answer +
reasoning budget, what is learnt from usage, and one more try on the same model after a
`length` cut before the chain moves on."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from courseforge.cache import ResponseCache, StoreBackend
from courseforge.config import ReasoningSettings
from courseforge.domain.tasks import TaskId
from courseforge.engine import Checkpoints, CourseCalls, Runtime
from courseforge.engine.reasoning import MIN_SAMPLES, ReasoningBudgets, plan_reasoning
from courseforge.errors import BadResponse
from courseforge.ledger import Ledger
from courseforge.providers import ChatRequest, Message
from courseforge.providers.effects import CallSpec
from courseforge.providers.embeddings import HashingEmbedder
from courseforge.providers.openai_compat import OpenAICompatModel
from courseforge.resilience import RecordingHooks, RetryScheduled, StructuredOutputModel
from courseforge.sim import ModelProfile, SimProfile, SimServer
from courseforge.sim.profiles import ThinkingProfile
from courseforge.storage import SQLiteStore
from engine_helpers import hosted_settings

SETTINGS = hosted_settings()
SCHEMA = {"type": "object", "required": ["answer"], "properties": {"answer": {"type": "string"}}}


def request(max_tokens: int = 1800) -> ChatRequest:
    return ChatRequest([Message("user", "q")], json_schema=SCHEMA, max_tokens=max_tokens)


def test_a_cheap_lesson_asks_for_low_effort_and_its_budget_on_top_of_the_answer() -> None:
    ms = SETTINGS.models["gpt-oss-20b"]
    plan = plan_reasoning(ms, "gpt-oss-20b", "lesson", "lessons", request(), ReasoningBudgets())
    assert plan.effort == "low"
    assert plan.request.reasoning == {"effort": "low", "exclude": True}
    assert plan.request.max_tokens == 1800 + 600  # the prior 400 low-effort tokens x 1.5 headroom
    core = plan_reasoning(
        SETTINGS.models["gpt-oss-120b"],
        "gpt-oss-120b",
        "metadata_core",
        "metadata",
        request(),
        ReasoningBudgets(),
    )
    assert core.effort == "medium" and core.request.max_tokens == 1800 + 1800


def test_a_model_that_does_not_reason_is_sent_the_request_as_it_is() -> None:
    plan = plan_reasoning(
        SETTINGS.models["qwen3-max"], "qwen3-max", "lesson", "lessons", request(), ReasoningBudgets()
    )
    assert plan.request == request() and plan.effort == ""


def test_observed_usage_replaces_the_prior_once_there_is_enough() -> None:
    ms = SETTINGS.models["gpt-oss-20b"]
    budgets = ReasoningBudgets()
    for tokens in [100, 120, 200][: MIN_SAMPLES - 1]:
        budgets.observe("gpt-oss-20b", "lesson", "low", tokens)
    assert plan_reasoning(ms, "gpt-oss-20b", "lesson", "lessons", request(), budgets).expected_tokens == 400
    budgets.observe("gpt-oss-20b", "lesson", "low", 200)
    plan = plan_reasoning(ms, "gpt-oss-20b", "lesson", "lessons", request(), budgets)
    assert plan.expected_tokens == 200 and plan.request.max_tokens == 1800 + 300


def test_off_where_the_model_allows_it_and_its_least_effort_where_not() -> None:
    off = ReasoningSettings(can_disable=True, effort={"judge": "none"})
    ms = SETTINGS.models["gemini-2.5-flash"].model_copy(update={"reasoning": off})
    plan = plan_reasoning(ms, "gemini-2.5-flash", "judge", "lessons", request(300), ReasoningBudgets())
    assert plan.request.reasoning == {"enabled": False} and plan.request.max_tokens == 300
    cannot = ms.model_copy(update={"reasoning": ReasoningSettings(effort={"judge": "none"})})
    plan = plan_reasoning(cannot, "gemini-2.5-flash", "judge", "lessons", request(300), ReasoningBudgets())
    assert plan.effort == "low"
    budget = ms.model_copy(update={"reasoning": ReasoningSettings(steer="max_tokens", exclude=False)})
    plan = plan_reasoning(budget, "gemini-2.5-flash", "lesson", "lessons", request(300), ReasoningBudgets())
    assert plan.request.reasoning == {"max_tokens": 1800}


async def test_a_length_cut_is_asked_again_once_on_the_same_model_with_lower_effort_and_a_bigger_cap() -> (
    None
):
    # The model always thinks 800 tokens at medium (200 at low); we expect 100 at medium.
    thinker = ModelProfile(ttft_ms=0, tokens_per_s=1e6, jitter=0, thinking=ThinkingProfile(tokens=(800, 800)))
    rs = ReasoningSettings(effort={"lesson": "medium"}, expected_tokens={"medium": 100, "low": 100})
    ms = SETTINGS.models["gpt-oss-20b"].model_copy(update={"reasoning": rs})
    settings = SETTINGS.model_copy(update={"models": {**SETTINGS.models, "gpt-oss-20b": ms}})
    hooks = RecordingHooks()
    async with SimServer(SimProfile(defaults=thinker)) as sim:
        provider = OpenAICompatModel(model_id="gpt-oss-20b", model_name="m", base_url=sim.base_url)
        model = StructuredOutputModel(provider)
        runtime = Runtime(chains={"gpt-oss-20b": [model]}, embedder=HashingEmbedder(), hooks=hooks)
        ledger = Ledger(Decimal("1"))
        course = CourseCalls(settings, runtime, ledger)
        result = await course.call(CallSpec("lessons", TaskId.lesson_task("S1-L1"), "cheap", 1, request(100)))
        await provider.aclose()
    first, second = ledger.records
    assert (first.model, first.outcome, first.finish_reason) == ("gpt-oss-20b", "rejected", "length")
    assert first.reasoning_tokens == 250 and first.output_tokens == 250  # all of max_tokens thought away
    assert first.cost_usd > 0  # billed all the same
    assert second.outcome == "ok" and second.reasoning_tokens == 200
    assert "asked again after a length cut (250 reasoning tokens)" in second.reason
    assert "effort medium -> low" in second.reason and "max_tokens 250 -> 600" in second.reason
    assert result.response.usage.reasoning_tokens == 200
    assert any(isinstance(e, RetryScheduled) and e.error_kind == "length" for e in hooks.events)


async def test_a_second_cut_moves_on_down_the_chain() -> None:
    thinker = ModelProfile(
        ttft_ms=0,
        tokens_per_s=1e6,
        jitter=0,
        thinking=ThinkingProfile(tokens=(5000, 5000), default_effort="low"),
    )
    rs = ReasoningSettings(default_effort="low", expected_tokens={"low": 10})
    ms = SETTINGS.models["gpt-oss-20b"].model_copy(update={"reasoning": rs, "max_output_tokens": 400})
    settings = SETTINGS.model_copy(update={"models": {**SETTINGS.models, "gpt-oss-20b": ms}})
    async with SimServer(SimProfile(defaults=thinker)) as sim:
        provider = OpenAICompatModel(
            model_id="gpt-oss-20b", model_name="m", base_url=sim.base_url, max_output_tokens=400
        )
        runtime = Runtime(
            chains={"gpt-oss-20b": [StructuredOutputModel(provider)]}, embedder=HashingEmbedder()
        )
        ledger = Ledger(Decimal("1"))
        course = CourseCalls(settings, runtime, ledger)
        with pytest.raises(BadResponse, match="cut off at max_tokens"):
            await course.call(CallSpec("lessons", TaskId.lesson_task("S1-L1"), "cheap", 1, request(100)))
        await provider.aclose()
    assert [r.outcome for r in ledger.records] == ["rejected", "rejected"]  # asked again once, no more


def test_an_effort_for_an_unknown_task_kind_or_phase_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="lesons is neither a task kind nor a phase"):
        ReasoningSettings(effort={"lesons": "low"})
    with pytest.raises(ValueError, match="needs can_disable"):
        ReasoningSettings(default_effort="none")


@pytest.mark.parametrize("backend", ["sqlite", "response_cache"])
async def test_a_replayed_call_keeps_the_reasoning_tokens_it_was_billed_for(
    tmp_path: Path, backend: str
) -> None:
    """A checkpoint replayed in a later run (or a response-cache hit) reports the thinking of the
    answer that was paid for, not 0; so do the report's totals built from those records."""
    thinker = ModelProfile(ttft_ms=0, tokens_per_s=1e6, jitter=0, thinking=ThinkingProfile(tokens=(300, 300)))
    store = SQLiteStore(str(tmp_path / "jobs.db"))
    await store.init()
    spec = CallSpec("lessons", TaskId.lesson_task("S1-L1"), "cheap", 1, request(100))
    try:
        async with SimServer(SimProfile(defaults=thinker)) as sim:
            provider = OpenAICompatModel(model_id="gpt-oss-20b", model_name="m", base_url=sim.base_url)
            runtime = Runtime(
                chains={"gpt-oss-20b": [StructuredOutputModel(provider)]}, embedder=HashingEmbedder()
            )

            async def run_once() -> Ledger:
                ledger = Ledger(Decimal("1"))
                if backend == "sqlite":
                    course = CourseCalls(
                        SETTINGS, runtime, ledger, checkpoints=await Checkpoints.load(store, "job")
                    )
                else:
                    cache = ResponseCache(StoreBackend(store), namespace="t", templates="t")
                    course = CourseCalls(SETTINGS, runtime, ledger, cache=cache)
                await course.call(spec)
                return ledger

            paid = (await run_once()).records
            again = (await run_once()).records
            await provider.aclose()
            sent = sum(n for (_, outcome), n in sim.stats.items())
    finally:
        await store.close()
    assert sent == 1  # the second run sent nothing
    assert [r.outcome for r in paid] == ["ok"] and paid[0].reasoning_tokens > 0
    (served,) = again
    assert served.replayed or served.cache_hit
    assert served.reasoning_tokens == paid[0].reasoning_tokens
    assert served.output_tokens == paid[0].output_tokens
    assert served.finish_reason == paid[0].finish_reason == "stop"
    assert Ledger.totals(again, "model")["gpt-oss-20b"].reasoning_tokens == paid[0].reasoning_tokens
