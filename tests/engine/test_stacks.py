"""Model stacks (engine/stacks.py): a model's second provider sits right after it in its chains
and takes over when the first provider fails, over real loopback sockets (issue 19)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from courseforge.config import Settings
from courseforge.domain.tasks import TaskId
from courseforge.engine import CourseCalls, Engine
from courseforge.engine.stacks import chain_ids, model_chains
from courseforge.ledger import Ledger
from courseforge.providers import ChatRequest, Message
from courseforge.providers.effects import CallSpec
from courseforge.providers.embeddings import HashingEmbedder
from courseforge.testing import LoopbackReply, LoopbackServer, ScriptedModel
from engine_helpers import LARGE_CHAIN, chained_config, loopback_config

SCHEMA = {"type": "object", "required": ["answer"], "properties": {"answer": {"type": "string"}}}
ROUTING = {"order": ["DeepInfra"], "allow_fallbacks": False}


def _settings(first_url: str, second_url: str) -> Settings:
    config = loopback_config(first_url)
    config["providers"]["backup"] = {"kind": "openai", "base_url": second_url, "api_key_env": None}
    config["models"]["large"]["second_provider"] = {
        "provider": "backup",
        "name": "other/large",
        "price_in_per_m": "1.00",
    }
    config["models"]["large"]["fallbacks"] = ["medium"]
    config["models"]["medium"]["provider_routing"] = ROUTING
    return Settings.model_validate(config)


def _spec() -> CallSpec:
    request = ChatRequest([Message("user", "What is 6 x 7?")], json_schema=SCHEMA, max_tokens=50)
    return CallSpec("lessons", TaskId.lesson_task("S1-L1"), "premium", 1, request)


async def test_second_provider_becomes_a_model_of_its_own() -> None:
    settings = _settings("http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1")
    second = settings.models["large@second"]
    assert (second.provider, second.name, second.second_of) == ("backup", "other/large", "large")
    assert second.price_in_per_m == Decimal("1.00")
    assert second.price_out_per_m == settings.models["large"].price_out_per_m
    engine = Engine(settings, env={}, embedder=HashingEmbedder())
    chain = engine.stacks.chains()["large"]
    await engine.aclose()
    assert [m.model_id for m in chain] == ["large", "large@second", "medium"]


def test_unknown_second_provider_is_named() -> None:
    config = loopback_config("http://127.0.0.1:1/v1")
    config["models"]["large"]["second_provider"] = {"provider": "nowhere"}
    with pytest.raises(ValueError, match=r"models\.large\.second_provider\.provider: unknown provider"):
        Settings.model_validate(config)


async def test_the_second_provider_answers_when_the_first_fails() -> None:
    def down(payload: dict[str, Any]) -> LoopbackReply:
        return LoopbackReply(status=503, json_body={"error": {"message": "overloaded"}})

    def up(payload: dict[str, Any]) -> LoopbackReply:
        return LoopbackReply.completion(
            '{"answer": "42"}', usage={"prompt_tokens": 20, "completion_tokens": 5}
        )

    async with LoopbackServer(down) as first, LoopbackServer(up) as second:
        settings = _settings(first.base_url, second.base_url)
        engine = Engine(settings, env={}, embedder=HashingEmbedder())
        try:
            ledger = Ledger(Decimal("1"))
            result = await CourseCalls(settings, engine.runtime(), ledger).call(_spec())
        finally:
            await engine.aclose()
    assert result.response.text == '{"answer": "42"}'
    assert [(r.model, r.outcome) for r in ledger.records] == [("large", "error"), ("large@second", "ok")]
    assert result.record.reason == "fallback for large"
    # Billed at the second provider's price: 20 tokens in at $1.00/M, 5 out at large's $3.90/M.
    assert result.record.cost_usd == Decimal("0.00002") + Decimal("0.0000195")
    assert [r.json["model"] for r in second.requests] == ["other/large"]
    assert all("provider" not in r.json for r in [*first.requests, *second.requests])
    snaps = engine.breakers.snapshots()
    assert {"provider:loop", "provider:backup"} <= set(snaps)


async def test_provider_routing_is_sent_as_openrouter_provider_object() -> None:
    def up(payload: dict[str, Any]) -> LoopbackReply:
        return LoopbackReply.completion('{"answer": "42"}')

    async with LoopbackServer(up) as server:
        settings = _settings(server.base_url, server.base_url)
        engine = Engine(settings, env={}, embedder=HashingEmbedder())
        try:
            await engine.stacks.stack("medium").complete(_spec().request)
        finally:
            await engine.aclose()
    assert server.requests[-1].json["provider"] == ROUTING
    assert "provider:loop[DeepInfra]" in engine.breakers.snapshots()


def test_a_chain_tries_each_model_once_where_it_first_comes() -> None:
    settings = Settings.model_validate(chained_config())
    assert chain_ids(settings)["large"] == LARGE_CHAIN
    built = model_chains(settings, lambda model_id: ScriptedModel(lambda r: "{}", model_id=model_id))
    assert [m.model_id for m in built["large"]] == LARGE_CHAIN
