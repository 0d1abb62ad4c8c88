"""Hedged requests (resilience/hedge.py): the delay from the model's observed p95, the race,
and over real loopback sockets through the metered calls: the slow first request is cancelled
when the hedge answers, and its cost stays on the ledger."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

import pytest

from courseforge.config import HedgingSettings, Settings
from courseforge.domain.tasks import TaskId
from courseforge.engine import CourseCalls, Engine
from courseforge.ledger import Ledger
from courseforge.providers import ChatRequest, Message
from courseforge.providers.effects import CallSpec
from courseforge.providers.embeddings import HashingEmbedder
from courseforge.resilience.hedge import LatencyTracker, hedge_delay_s, race
from courseforge.testing import LoopbackReply, LoopbackServer
from engine_helpers import loopback_config

SCHEMA = {"type": "object", "required": ["answer"], "properties": {"answer": {"type": "string"}}}
#: The first request's delay: far longer than the hedge needs.
SLOW_S = 5.0


def test_p95_of_observed_latencies_after_enough_samples() -> None:
    tracker = LatencyTracker()
    settings = HedgingSettings(min_samples=5, initial_delay_s=7.0, min_delay_s=0.1)
    assert hedge_delay_s(tracker, "m", settings) == 7.0  # nothing observed yet
    for s in [1.0, 1.2, 0.9, 1.1]:
        tracker.observe("m", s)
    assert hedge_delay_s(tracker, "m", settings) == 7.0  # 4 < min_samples
    for s in [1.3] * 15 + [4.0]:
        tracker.observe("m", s)
    assert tracker.quantile("m", 0.95) == 1.3  # the one 4 s outlier is above the p95
    assert hedge_delay_s(tracker, "m", settings) == 1.3
    bounded = HedgingSettings(min_samples=1, max_delay_s=1.0)
    assert hedge_delay_s(tracker, "m", bounded) == 1.0


async def test_a_fast_first_answer_sends_no_hedge() -> None:
    started: list[str] = []

    async def leg(name: str, delay: float) -> str:
        started.append(name)
        await asyncio.sleep(delay)
        return name

    assert await race(lambda: leg("first", 0.0), lambda: leg("second", 0.0), 1.0) == "first"
    assert started == ["first"]


async def test_the_hedge_wins_and_the_slow_leg_is_cancelled() -> None:
    cancelled: list[str] = []

    async def leg(name: str, delay: float) -> str:
        try:
            await asyncio.sleep(delay)
        except asyncio.CancelledError:
            cancelled.append(name)
            raise
        return name

    assert await race(lambda: leg("first", 10.0), lambda: leg("second", 0.0), 0.05) == "second"
    assert cancelled == ["first"]


async def test_a_failed_leg_leaves_the_race_to_the_other() -> None:
    async def fails() -> str:
        await asyncio.sleep(0.1)
        raise RuntimeError("first failed")

    async def answers() -> str:
        await asyncio.sleep(0.2)
        return "second"

    assert await race(fails, answers, 0.01) == "second"
    with pytest.raises(RuntimeError, match="first failed"):
        await race(fails, fails, 0.01)


def _settings(base_url: str) -> Settings:
    config: dict[str, Any] = loopback_config(base_url)
    config["routing"]["hedging"] = {
        "enabled": True,
        "phases": ["metadata"],
        "initial_delay_s": 0.3,
        "min_delay_s": 0.0,
    }
    return Settings.model_validate(config)


async def test_hedged_call_over_loopback_cancels_the_loser_and_bills_it() -> None:
    seen = 0

    def handler(payload: dict[str, Any]) -> LoopbackReply:
        nonlocal seen
        seen += 1
        delay = SLOW_S if seen == 1 else 0.0  # the first request hangs, the hedge answers
        return LoopbackReply.completion(
            '{"answer": "42"}', usage={"prompt_tokens": 30, "completion_tokens": 5}, delay_s=delay
        )

    request = ChatRequest([Message("user", "What is 6 x 7?")], json_schema=SCHEMA, max_tokens=50)
    spec = CallSpec("metadata", TaskId.lesson_task("S1-L1"), "premium", 1, request)
    async with LoopbackServer(handler) as server:
        settings = _settings(server.base_url)
        engine = Engine(settings, env={}, embedder=HashingEmbedder())
        ledger = Ledger(Decimal("1"))
        try:
            started = time.perf_counter()
            result = await CourseCalls(settings, engine.runtime(), ledger).call(spec)
            elapsed = time.perf_counter() - started
        finally:
            await engine.aclose()
    assert result.response.text == '{"answer": "42"}'
    assert elapsed < SLOW_S / 2  # the hedge's answer, not the slow one's
    assert len(server.requests) == 2
    assert [(r.model, r.outcome) for r in ledger.records] == [("large", "ok"), ("large", "cancelled")]
    loser = ledger.records[1]
    assert loser.cost_usd > 0 and loser.input_tokens > 0 and "hedge lost" in loser.reason
    assert ledger.spent == result.record.cost_usd + loser.cost_usd
    assert ledger.committed == ledger.spent  # no reservation left behind


async def test_phases_without_hedging_send_one_request() -> None:
    def handler(payload: dict[str, Any]) -> LoopbackReply:
        return LoopbackReply.completion('{"answer": "42"}', delay_s=0.5)

    request = ChatRequest([Message("user", "q")], json_schema=SCHEMA, max_tokens=50)
    spec = CallSpec("lessons", TaskId.lesson_task("S1-L1"), "premium", 1, request)
    async with LoopbackServer(handler) as server:
        settings = _settings(server.base_url)
        engine = Engine(settings, env={}, embedder=HashingEmbedder())
        try:
            await CourseCalls(settings, engine.runtime(), Ledger(Decimal("1"))).call(spec)
        finally:
            await engine.aclose()
    assert len(server.requests) == 1
