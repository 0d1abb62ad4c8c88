"""Batch mode end to end on the simulator's batch API: half price, one batch per model per
round shared by concurrent courses, failures take the normal path, a restart polls again."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

import pytest

from courseforge.cache import request_key
from courseforge.config import Settings
from courseforge.domain import Report
from courseforge.domain.tasks import TaskId
from courseforge.engine import CourseCalls, Engine, Runtime, without_cache
from courseforge.engine.batching import Batcher
from courseforge.errors import ProviderHTTPError
from courseforge.jobs import InProcessRunner, generate_durably, new_job
from courseforge.ledger import Ledger, estimate_input_tokens, worst_case_cost
from courseforge.providers import ChatRequest, Message
from courseforge.providers.effects import CallSpec
from courseforge.providers.embeddings import CachedEmbedder, HashingEmbedder
from courseforge.providers.openai_compat import OpenAICompatModel
from courseforge.sim import ModelProfile, SimProfile, SimServer
from courseforge.storage import PendingBatch, Store
from engine_helpers import example_analysis, loopback_config


def profile(**batch: Any) -> SimProfile:
    return SimProfile(
        defaults=ModelProfile(ttft_ms=0, tokens_per_s=1e6, jitter=0, prompt_cache_min_tokens=0, **batch)
    )


def settings_for(sim: SimServer) -> Settings:
    config = loopback_config(sim.base_url, batch={"collect_s": 0.05, "max_collect_s": 1.0, "poll_s": 0.05})
    return without_cache(Settings.model_validate(config))


def engine_for(settings: Settings) -> Engine:
    return Engine(settings, env={}, embedder=CachedEmbedder(HashingEmbedder()))


async def run(
    settings: Settings, store: Store, job: str, *, batch: bool, engine: Engine | None = None
) -> Report:
    own = engine is None
    engine = engine or engine_for(settings)
    try:
        course, report = await generate_durably(
            settings,
            example_analysis(),
            job_id=job,
            engine=engine,
            store=store,
            say=lambda _: None,
            batch=batch,
        )
    finally:
        if own:
            await engine.aclose()
    assert course is not None, report.failure_reason
    return report


def count(sim: SimServer, outcome: str) -> int:
    return sum(n for (_, o), n in sim.stats.items() if o == outcome)


async def test_batch_mode_pays_the_batch_price_for_the_same_course(store: Store) -> None:
    async with (
        SimServer(profile(batch_delay_s=0)) as normal_sim,
        SimServer(profile(batch_delay_s=0)) as batch_sim,
    ):
        normal = await run(settings_for(normal_sim), store, "normal", batch=False)
        batched = await run(settings_for(batch_sim), store, "batched", batch=True)
    assert count(batch_sim, "ok") == 0  # not one request on the normal path
    assert count(batch_sim, "batch_created") == batched.summary["batches"] >= 3
    answered = [c for c in batched.calls if c.outcome in ("ok", "rejected")]
    assert answered and all(c.batch_id for c in answered)
    assert batched.summary["batch_calls"] == len(answered)
    # the same answers, the same verdicts, at the models' batch multiplier (0.5)
    assert [(g.lesson_id, g.status) for g in batched.lessons] == [
        (g.lesson_id, g.status) for g in normal.lessons
    ]
    assert batched.total_cost_usd == pytest.approx(
        normal.total_cost_usd * Decimal("0.5"), rel=Decimal("1e-9")
    )


@pytest.mark.parametrize("fault", [{"batch_failed_request": 1.0}, {"batch_expire": 1.0}])
async def test_what_a_batch_fails_takes_the_normal_path(store: Store, fault: dict[str, float]) -> None:
    async with SimServer(profile(batch_delay_s=0, **fault)) as sim:
        report = await run(settings_for(sim), store, "faulty", batch=True)
    assert count(sim, "batch_created") > 0
    assert count(sim, "ok") > 0  # answered on the normal path
    assert report.summary["batch_calls"] == 0
    assert all(not c.batch_id for c in report.calls)


async def test_concurrent_courses_share_one_batch_per_model_per_round(store: Store) -> None:
    async with (
        SimServer(profile(batch_delay_s=0)) as alone_sim,
        SimServer(profile(batch_delay_s=0)) as shared_sim,
    ):
        await run(settings_for(alone_sim), store, "alone", batch=True)
        alone = count(alone_sim, "batch_created")
        settings = settings_for(shared_sim)
        engine = engine_for(settings)
        try:
            await asyncio.gather(
                *(run(settings, store, f"together-{i}", batch=True, engine=engine) for i in range(2))
            )
            sizes = [n for _, _, n in engine.batcher().created]
        finally:
            await engine.aclose()
    # two courses in the same rounds: no more batches than one course alone needs... give or
    # take a round the courses did not reach together
    assert count(shared_sim, "batch_created") < 2 * alone
    assert max(sizes) > 1


class Watching(Batcher):
    """A Batcher that notes the course's committed budget as each round is sent."""

    def __init__(self, *args: Any, ledger: Ledger, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ledger = ledger
        self.committed_at_send: list[Decimal] = []

    async def _collect(self, model_id: str, api: OpenAICompatModel) -> None:
        await asyncio.sleep(self.settings.batch.collect_s * 2)  # the round is complete
        self.committed_at_send.append(self.ledger.committed)
        await super()._collect(model_id, api)


async def test_the_whole_batch_is_reserved_before_it_is_sent() -> None:
    async with SimServer(profile(batch_delay_s=0)) as sim:
        settings = settings_for(sim)
        ms = settings.models["small"]
        model = OpenAICompatModel(model_id="small", model_name=ms.name, base_url=sim.base_url)
        ledger = Ledger(Decimal("1"))
        batcher = Watching(settings, lambda _m: model, ledger=ledger)
        runtime = Runtime(chains={"small": [model]}, embedder=HashingEmbedder())
        calls = CourseCalls(settings, runtime, ledger, batcher=batcher)
        requests = [ChatRequest([Message("user", f"question {i}")], max_tokens=100) for i in range(3)]
        specs = [
            CallSpec("lessons", TaskId("lesson", f"S1-L{i}"), "cheap", 1, r) for i, r in enumerate(requests)
        ]
        try:
            results = await asyncio.gather(*(calls.call(spec) for spec in specs))
        finally:
            await model.aclose()
    worst = sum(
        (worst_case_cost(ms, estimate_input_tokens(r.messages), r.max_tokens) for r in requests), Decimal(0)
    )
    assert batcher.committed_at_send == [worst]  # all three held before the one batch went
    assert [n for _, _, n in batcher.created] == [3]
    assert all(r.record.batch_id == batcher.created[0][1] for r in results)
    assert ledger.committed == ledger.spent == sum((r.record.cost_usd for r in results), Decimal(0))


async def test_a_restart_polls_the_batch_in_flight_instead_of_paying_again(store: Store) -> None:
    analysis = example_analysis()
    async with SimServer(profile(batch_delay_s=3600), time_scale=1.0) as sim:
        settings = settings_for(sim)
        job, _ = await store.create_job(new_job("crash", analysis))
        engine = engine_for(settings)
        task = asyncio.ensure_future(InProcessRunner(engine, store, batch=True).run(job, analysis=analysis))
        # Crash once both metadata batches (the core and the extras, each its model's) are sent
        # and recorded: polled with a deadline for a loaded machine (the store's write runs on a
        # thread; a fixed 0.1 s after the sending was once all it had).
        deadline = time.monotonic() + 60
        while len(sim.batches.batches) < 2 or len(await store.pending_batches()) < 2:
            assert time.monotonic() < deadline and not task.done(), "the metadata batches were not sent"
            await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await engine.aclose()
        in_flight = sorted(sim.batches.batches)
        assert in_flight == ["batch-sim-0", "batch-sim-1"]
        assert sorted(b.id for b in await store.pending_batches()) == in_flight

        sim.profile = profile(batch_delay_s=0)  # the provider finishes the batch meanwhile
        engine = engine_for(settings)
        try:
            current = await store.get_job("crash")
            assert current is not None
            result = await InProcessRunner(engine, store, batch=True).run(current, analysis=analysis)
        finally:
            await engine.aclose()
    first_round = [c for c in result.report.calls if c.batch_id in in_flight]
    assert {c.task for c in first_round} == {
        "metadata_core",
        "metadata_extras",
    }  # the batches sent before the crash
    created = sim.batches.batches
    asked = [item["custom_id"] for b in created.values() for item in b["requests"]]
    assert len(asked) == len(set(asked))  # no request was sent in a second batch
    assert await store.pending_batches() == []


async def test_a_recorded_batch_the_provider_no_longer_knows_takes_the_normal_path(store: Store) -> None:
    async with SimServer(profile(batch_delay_s=0)) as sim:
        settings = settings_for(sim)
        ms = settings.models["small"]
        model = OpenAICompatModel(model_id="small", model_name=ms.name, base_url=sim.base_url)
        request = ChatRequest([Message("user", "question")], max_tokens=50)
        custom_id = request_key(ms, request, templates="", attempt=1, sample=0)
        await store.save_batch(PendingBatch("batch-gone", "small", (custom_id,)))
        batcher = Batcher(settings, lambda _m: model, store=store)
        calls = CourseCalls(
            settings,
            Runtime(chains={"small": [model]}, embedder=HashingEmbedder()),
            Ledger(Decimal(1)),
            batcher=batcher,
        )
        try:
            result = await calls.call(CallSpec("lessons", TaskId("lesson", "S1-L1"), "cheap", 1, request))
        finally:
            await model.aclose()
    assert result.record.batch_id == "" and result.record.outcome == "ok"
    assert count(sim, "ok") == 1 and count(sim, "batch_created") == 0  # answered on the normal path
    assert await store.pending_batches() == []


async def test_a_model_without_a_cheaper_batch_price_is_not_batched(store: Store) -> None:
    """No synced `:batch` price below the normal one (batch_price_multiplier None): batch mode
    sends that model's calls the normal way, never at an assumed half price."""
    async with SimServer(profile(batch_delay_s=0)) as sim:
        settings = settings_for(sim)
        unknown = settings.models["small"].model_copy(update={"batch_price_multiplier": None})
        settings = settings.model_copy(update={"models": {**settings.models, "small": unknown}})
        model = OpenAICompatModel(model_id="small", model_name=unknown.name, base_url=sim.base_url)
        calls = CourseCalls(
            settings,
            Runtime(chains={"small": [model]}, embedder=HashingEmbedder()),
            Ledger(Decimal(1)),
            batcher=Batcher(settings, lambda _m: model, store=store),
        )
        request = ChatRequest([Message("user", "question")], max_tokens=50)
        try:
            result = await calls.call(CallSpec("lessons", TaskId("lesson", "S1-L1"), "cheap", 1, request))
        finally:
            await model.aclose()
    assert result.record.batch_id == "" and count(sim, "batch_created") == 0


async def test_the_simulator_refuses_a_batch_body_with_requests_before_model() -> None:
    """OpenRouter reads a batch body as a stream: `endpoint` and `model` come before `requests`."""
    async with SimServer(profile(batch_delay_s=0)) as sim:
        model = OpenAICompatModel(model_id="small", model_name="test/small", base_url=sim.base_url)
        try:
            with pytest.raises(ProviderHTTPError) as info:
                await model.request_json(
                    "POST",
                    "/batches",
                    {"requests": [], "endpoint": "/v1/chat/completions", "model": "test/small"},
                )
            ok = await model.request_json(
                "POST",
                "/batches",
                {"endpoint": "/v1/chat/completions", "model": "test/small", "requests": []},
            )
        finally:
            await model.aclose()
    assert info.value.status == 400 and "before requests" in info.value.body
    assert ok["id"]
