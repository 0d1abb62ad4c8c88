"""The response cache end to end: the same course twice through the simulator pays once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from courseforge.config import Settings
from courseforge.domain import Course, Report
from courseforge.engine import Engine, open_response_cache, without_cache
from courseforge.jobs import generate_durably
from courseforge.providers.embeddings import CachedEmbedder, HashingEmbedder
from courseforge.sim import SimServer, load_profile
from courseforge.storage import Store
from engine_helpers import example_analysis, loopback_config


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    async with SimServer(load_profile("ideal"), time_scale=0.0) as server:
        yield server


def requests_seen(sim: SimServer) -> int:
    return sum(n for (_, outcome), n in sim.stats.items())


async def generate(settings: Settings, store: Store, job: str) -> tuple[Course | None, Report]:
    engine = Engine(settings, env={}, embedder=CachedEmbedder(HashingEmbedder()))
    try:
        return await generate_durably(
            settings, example_analysis(), job_id=job, engine=engine, store=store, say=lambda _: None
        )
    finally:
        await engine.aclose()


async def test_the_same_course_twice_sends_nothing_the_second_time(sim: SimServer, store: Store) -> None:
    settings = Settings.model_validate(loopback_config(sim.base_url))
    course1, report1 = await generate(settings, store, "first")
    sent = requests_seen(sim)
    assert course1 is not None and sent > 0 and report1.cache_hits == 0
    assert report1.total_cost_usd > 0

    course2, report2 = await generate(settings, store, "second")
    assert requests_seen(sim) == sent  # not one request reached the provider
    assert course2 is not None
    assert report2.total_cost_usd == Decimal(0)
    answered = [c for c in report2.calls if c.outcome in ("ok", "rejected")]
    assert answered and all(c.cache_hit and c.cost_source == "none" for c in answered)
    assert report2.cache_hits == len(answered) == report2.summary["cache_hits"]
    # what it saved is what the first run paid, and the gates judged the same answers the same way
    assert Decimal(str(report2.summary["cache_saved_usd"])) == pytest.approx(report1.total_cost_usd)
    assert course2.model_dump() == course1.model_dump()
    assert [(g.lesson_id, g.status) for g in report2.lessons] == [
        (g.lesson_id, g.status) for g in report1.lessons
    ]
    assert all(c.latency_ms >= 0 for c in answered)


async def test_no_cache_sends_every_call_again(sim: SimServer, store: Store) -> None:
    settings = Settings.model_validate(loopback_config(sim.base_url))
    await generate(settings, store, "first")
    sent = requests_seen(sim)
    _, report = await generate(without_cache(settings), store, "second")
    assert report.cache_hits == 0 and report.total_cost_usd > 0
    assert requests_seen(sim) == 2 * sent
    off = Settings.model_validate(loopback_config(sim.base_url, cache={"mode": "off"}))
    assert open_response_cache(off, store) is None
    semantic = Settings.model_validate(loopback_config(sim.base_url, cache={"mode": "semantic"}))
    opened = open_response_cache(semantic, store)
    assert opened is not None and opened.semantic is not None
    assert opened.semantic.threshold == semantic.cache.semantic_threshold
    exact = open_response_cache(settings, store)
    assert exact is not None and exact.semantic is None


async def test_a_namespace_does_not_see_another_namespace(sim: SimServer, store: Store) -> None:
    settings = Settings.model_validate(loopback_config(sim.base_url, cache={"namespace": "tenant-a"}))
    await generate(settings, store, "first")
    sent = requests_seen(sim)
    other = Settings.model_validate(loopback_config(sim.base_url, cache={"namespace": "tenant-b"}))
    _, report = await generate(other, store, "second")
    assert report.cache_hits == 0 and requests_seen(sim) == 2 * sent


async def test_lesson_calls_read_their_shared_prefix_from_the_provider_cache(store: Store) -> None:
    profile = load_profile("ideal")
    profile = profile.model_copy(
        update={"defaults": profile.defaults.model_copy(update={"prompt_cache_min_tokens": 128})}
    )
    async with SimServer(profile, time_scale=0.0) as sim:
        config = loopback_config(sim.base_url)
        for m in config["models"].values():
            m["price_cache_read_per_m"] = "0.01"
        settings = Settings.model_validate(config)
        _, report = await generate(without_cache(settings), store, "prefix")
    lessons = [c for c in report.calls if c.phase == "lessons" and c.task.startswith("lesson:")]
    assert sum(1 for c in lessons if c.cached_tokens > 0) >= len(lessons) - 3  # the first per model pays
    assert report.summary["cached_input_tokens"] == sum(c.cached_tokens for c in report.calls) > 0
    assert report.summary["prompt_cache_saved_usd"] == pytest.approx(
        float(sum(c.saved_usd for c in report.calls))
    )
    assert report.summary["prompt_cache_saved_usd"] > 0
