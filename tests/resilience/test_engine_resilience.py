"""The engine's side of resilience: fallback chains wired from config, faults counted per
course (even with courses running at once), breaker state in the report."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from courseforge.engine import Engine
from courseforge.errors import ConfigError, ProviderHTTPError
from courseforge.providers import ChatRequest
from courseforge.providers.embeddings import CachedEmbedder, HashingEmbedder
from courseforge.resilience import set_testing
from courseforge.testing import CourseAuthor, ScriptedModel
from engine_helpers import example_analysis, hosted_settings, scripted_models


@pytest.fixture(autouse=True)
def no_real_backoff() -> Iterator[None]:
    set_testing(True)
    yield
    set_testing(False)


def test_hosted_profile_chains_qwen_to_gpt_oss_120b_to_gemini() -> None:
    settings = hosted_settings()
    assert settings.models["qwen3-max"].fallbacks == ["gpt-oss-120b", "gemini-2.5-flash"]
    engine = Engine(
        settings, env={}, models=scripted_models(settings), embedder=CachedEmbedder(HashingEmbedder())
    )
    chain = engine.runtime().chains["qwen3-max"]
    assert [m.model_id for m in chain] == ["qwen3-max", "gpt-oss-120b", "gemini-2.5-flash"]
    # each is its own model's stack: the same object as that model's chain head
    assert chain[1] is engine.runtime().chains["gpt-oss-120b"][0]


def test_unknown_fallback_is_a_config_error() -> None:
    from pydantic import ValidationError

    settings = hosted_settings()
    data = settings.model_dump()
    data["models"]["qwen3-max"]["fallbacks"] = ["nope"]
    with pytest.raises((ValidationError, ConfigError), match="fallbacks"):
        type(settings).model_validate(data)


async def test_premium_failure_falls_back_within_the_call_and_stays_on_the_bill() -> None:
    settings = hosted_settings()
    author = CourseAuthor()

    def qwen(request: ChatRequest) -> str | Exception:
        return ProviderHTTPError(503, "qwen is down")

    def empty_120b(request: ChatRequest) -> str:
        # gpt-oss-120b answers the metadata call (premium fallback) with nothing, billed.
        return "" if "metadata_core" in request.messages[-1].content else author(request)

    models = scripted_models(settings)
    models["qwen3-max"] = ScriptedModel(qwen, model_id="qwen3-max")
    models["gpt-oss-120b"] = ScriptedModel(empty_120b, model_id="gpt-oss-120b")
    engine = Engine(settings, env={}, models=models, embedder=CachedEmbedder(HashingEmbedder()))
    try:
        result = await engine.generate(example_analysis())
    finally:
        await engine.aclose()
    report = result.report
    core = [(c.model, c.outcome) for c in report.calls if c.task == "metadata_core"]
    # qwen's 503s are retried until its breaker opens (3 in a row): the last try is refused.
    assert core[:3] == [("qwen3-max", "skipped"), ("gpt-oss-120b", "rejected"), ("gemini-2.5-flash", "ok")]
    rejected = next(c for c in report.calls if c.task == "metadata_core" and c.outcome == "rejected")
    assert rejected.cost_usd > 0 and rejected.output_tokens > 0  # the empty answer was billed
    assert report.faults["bad_response_empty"] >= 1 and report.faults["http_503"] >= 1
    assert report.breakers["qwen3-max"].consecutive_failures >= 1
    assert set(report.breakers) >= {"qwen3-max", "gpt-oss-120b", "gemini-2.5-flash"}


async def test_faults_are_counted_per_course_when_courses_run_at_once() -> None:
    settings = hosted_settings()
    calls = {"n": 0}
    author = CourseAuthor()

    def flaky(request: ChatRequest) -> str | Exception:
        calls["n"] += 1
        return ProviderHTTPError(502, "flaky") if calls["n"] % 4 == 0 else author(request)

    models = scripted_models(settings)
    models["gpt-oss-20b"] = ScriptedModel(flaky, model_id="gpt-oss-20b", latency_s=0.001)
    engine = Engine(settings, env={}, models=models, embedder=CachedEmbedder(HashingEmbedder()))
    try:
        results = await asyncio.gather(
            engine.generate(example_analysis(course_id="a")),
            engine.generate(example_analysis(course_id="b")),
            engine.generate(example_analysis("spanish-a1", course_id="c")),
        )
    finally:
        await engine.aclose()
    per_course = [r.report.faults.get("http_502", 0) for r in results]
    assert sum(per_course) == engine.hooks.fault_counts()["http_502"]
    assert all(n >= 1 for n in per_course)
    assert sum(r.report.retries for r in results) == engine.hooks.retry_count()
