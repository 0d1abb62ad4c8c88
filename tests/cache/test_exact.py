"""The response cache and its backends: TTL, size bound, namespaces, failures are misses."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest

from courseforge.cache import MemoryBackend, RedisBackend, ResponseCache
from courseforge.config import ModelSettings
from courseforge.providers import ChatRequest, ChatResponse, Message, Usage
from courseforge.storage import CachedResponse
from courseforge.testing.processes import redis_binary

MODEL = ModelSettings(provider="p", name="m")


def request(n: int) -> ChatRequest:
    return ChatRequest([Message("user", f"question {n}")])


def answer(n: int) -> ChatResponse:
    return ChatResponse(f"answer {n}", Usage(100, 20, 0), 12.0, "m", "stop")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Iterator[Clock]:
    yield Clock()


async def keep(cache: ResponseCache, n: int, cost: str = "0.001") -> None:
    await cache.keep("m-id", MODEL, request(n), answer(n), cost_usd=Decimal(cost), latency_ms=12.0)


async def test_a_kept_answer_is_served_for_the_same_request_only(clock: Clock) -> None:
    cache = ResponseCache(MemoryBackend(), namespace="ns", templates="t", clock=clock)
    await keep(cache, 1)
    hit = await cache.lookup(MODEL, request(1))
    assert hit is not None and hit.text == "answer 1" and hit.cost_usd == Decimal("0.001")
    assert hit.model == "m-id" and hit.input_tokens == 100
    assert await cache.lookup(MODEL, request(2)) is None
    assert await cache.lookup(MODEL, request(1), attempt=2) is None
    # another namespace (tenant) sees nothing of this one
    assert await cache.for_namespace("other").lookup(MODEL, request(1)) is None


async def test_entries_expire_and_the_oldest_are_dropped(clock: Clock) -> None:
    cache = ResponseCache(
        MemoryBackend(), namespace="ns", templates="t", ttl_s=60, max_entries=2, clock=clock
    )
    for n in (1, 2, 3):
        clock.now += 1
        await keep(cache, n)
    assert await cache.lookup(MODEL, request(1)) is None  # evicted: the oldest of three
    assert await cache.lookup(MODEL, request(3)) is not None
    clock.now += 61
    assert await cache.lookup(MODEL, request(3)) is None  # expired


class Broken:
    async def get(self, namespace: str, key: str, *, now: float) -> CachedResponse | None:
        raise ConnectionError("store down")

    async def put(self, entry: CachedResponse, *, max_entries: int) -> None:
        raise ConnectionError("store down")


async def test_a_failing_backend_is_a_miss_not_a_failure() -> None:
    cache = ResponseCache(Broken(), namespace="ns", templates="t")
    await keep(cache, 1)
    assert await cache.lookup(MODEL, request(1)) is None


@pytest.mark.skipif(redis_binary() is None, reason="redis-server is not installed")
async def test_redis_backend(redis_url: str, clock: Clock) -> None:
    backend = RedisBackend(redis_url, prefix="test-cache")
    try:
        cache = ResponseCache(backend, namespace="ns", templates="t", ttl_s=3600, max_entries=2, clock=clock)
        for n in (1, 2, 3):
            clock.now += 1
            await keep(cache, n, cost="0.25")
        assert await cache.lookup(MODEL, request(1)) is None
        hit = await cache.lookup(MODEL, request(3))
        assert hit is not None and hit.text == "answer 3" and hit.cost_usd == Decimal("0.25")
        clock.now += 3601
        assert await cache.lookup(MODEL, request(3)) is None
    finally:
        await backend.aclose()
