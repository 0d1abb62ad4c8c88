"""The simulator's reasoning models: thinking eats max_tokens, is billed as output and is
reported in OpenRouter's documented fields; `reasoning` steers it."""

from __future__ import annotations

from typing import Any

import aiohttp

from courseforge.sim import ModelProfile, SimProfile, SimServer, load_profile
from courseforge.sim.profiles import ThinkingProfile

THINKER = ModelProfile(
    ttft_ms=0, tokens_per_s=1e6, jitter=0, thinking=ThinkingProfile(tokens=(800, 800), can_disable=False)
)
SCHEMA = {"type": "object", "required": ["title"], "properties": {"title": {"type": "string"}}}


async def ask(server: SimServer, **extra: Any) -> dict[str, Any]:
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "Describe a thing."}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": SCHEMA}},
        **extra,
    }
    url = f"{server.base_url}/chat/completions"
    async with aiohttp.ClientSession() as session, session.post(url, json=body) as resp:
        assert resp.status == 200
        data: dict[str, Any] = await resp.json()
        return data


async def test_thinking_is_billed_as_output_and_reported() -> None:
    async with SimServer(SimProfile(defaults=THINKER)) as server:
        data = await ask(server, max_tokens=2000)
    usage, choice = data["usage"], data["choices"][0]
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 800
    assert usage["completion_tokens"] > 800  # the answer's tokens on top of the thinking
    assert choice["finish_reason"] == "stop" and choice["native_finish_reason"] == "stop"
    assert choice["message"]["reasoning"].count("thinking") == 800
    assert server.tokens["m", "reasoning"] == 800


async def test_thinking_that_eats_max_tokens_leaves_no_answer() -> None:
    async with SimServer(SimProfile(defaults=THINKER)) as server:
        data = await ask(server, max_tokens=500)
    choice = data["choices"][0]
    assert choice["message"]["content"] is None
    assert choice["finish_reason"] == "length"
    assert data["usage"]["completion_tokens"] == 500
    assert server.stats["m", "reasoning_cut"] == 1


async def test_effort_exclude_and_off_steer_the_thinking() -> None:
    can_stop = THINKER.model_copy(update={"thinking": ThinkingProfile(tokens=(800, 800), can_disable=True)})
    async with SimServer(SimProfile(defaults=THINKER, models={"g": can_stop.model_dump()})) as server:
        low = await ask(server, max_tokens=2000, reasoning={"effort": "low", "exclude": True})
        capped = await ask(server, max_tokens=2000, reasoning={"max_tokens": 100})
        not_off = await ask(server, max_tokens=2000, reasoning={"enabled": False})
        off = await ask(server, model="g", max_tokens=2000, reasoning={"enabled": False})
    assert low["usage"]["completion_tokens_details"]["reasoning_tokens"] == 200
    assert "reasoning" not in low["choices"][0]["message"]
    assert capped["usage"]["completion_tokens_details"]["reasoning_tokens"] == 100
    # gpt-oss cannot stop thinking: "off" is its lowest effort.
    assert not_off["usage"]["completion_tokens_details"]["reasoning_tokens"] == 200
    assert off["usage"]["completion_tokens_details"]["reasoning_tokens"] == 0


def test_the_bundled_reasoning_profile_thinks_where_openrouter_does() -> None:
    profile = load_profile("reasoning")
    for name in ("openai/gpt-oss-20b", "openai/gpt-oss-120b", "google/gemini-2.5-flash"):
        assert profile.for_model(name).thinking is not None
    assert profile.for_model("qwen/qwen3-max").thinking is None
