"""The simulator's provider prompt cache, as the real client reads it over a socket."""

from __future__ import annotations

import pytest

from courseforge.providers import ChatRequest, Message
from courseforge.providers.openai_compat import OpenAICompatModel
from courseforge.sim import ModelProfile, SimProfile, SimServer

SHARED = (
    "You write one lesson of a course. "
    + "The outline: "
    + "; ".join(f"lesson {i} on topic {i}" for i in range(60))
)


def sim_profile(min_tokens: int, block: int = 16) -> SimProfile:
    return SimProfile(
        defaults=ModelProfile(
            ttft_ms=0,
            tokens_per_s=1e6,
            jitter=0,
            prompt_cache_min_tokens=min_tokens,
            prompt_cache_block_tokens=block,
        )
    )


def lesson(n: int) -> ChatRequest:
    return ChatRequest([Message("system", SHARED), Message("user", f"Write lesson {n}.")], max_tokens=50)


def client(server: SimServer, prompt_cache: str = "auto", name: str = "m") -> OpenAICompatModel:
    return OpenAICompatModel(
        model_id=name, model_name=name, base_url=server.base_url, prompt_cache=prompt_cache
    )


async def test_a_repeated_prefix_is_reported_as_cached_in_blocks() -> None:
    async with SimServer(sim_profile(min_tokens=64)) as server:
        m = client(server)
        try:
            first = await m.complete(lesson(1))
            second = await m.complete(lesson(2))
            other_model = await client(server, name="other").complete(lesson(3))
        finally:
            await m.aclose()
    assert first.usage.cached_tokens == 0
    # the system message (and its framing) repeats; the user message differs
    assert 64 <= second.usage.cached_tokens < second.usage.input_tokens
    assert second.usage.cached_tokens % 16 == 0
    assert other_model.usage.cached_tokens == 0  # a cache per model


async def test_a_prefix_below_the_minimum_is_not_cached() -> None:
    async with SimServer(sim_profile(min_tokens=100_000)) as server:
        m = client(server)
        try:
            await m.complete(lesson(1))
            again = await m.complete(lesson(2))
        finally:
            await m.aclose()
    assert again.usage.cached_tokens == 0


@pytest.mark.parametrize("mode", ["cache_control", "explicit"])
async def test_a_cache_control_breakpoint_is_written_once_then_read(mode: str) -> None:
    async with SimServer(sim_profile(min_tokens=64)) as server:
        m = client(server, prompt_cache=mode)
        try:
            payload = m.build_payload(lesson(1))
            first = await m.complete(lesson(1))
            second = await m.complete(lesson(2))
        finally:
            await m.aclose()
    system = payload["messages"][0]["content"]
    assert system == [{"type": "text", "text": SHARED, "cache_control": {"type": "ephemeral"}}]
    assert first.usage.cache_write_tokens > 0 and first.usage.cached_tokens == 0
    assert second.usage.cached_tokens > 0 and second.usage.cache_write_tokens == 0
