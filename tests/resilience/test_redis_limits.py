"""Rate limits shared through a real redis-server started on 127.0.0.1 for this module
(`redis_url`, tests/conftest.py)."""

from __future__ import annotations

import time

import pytest

from courseforge.resilience import RedisRateLimiter
from courseforge.testing.processes import redis_binary

pytestmark = pytest.mark.skipif(
    redis_binary() is None,
    reason="redis-server is not installed (make deps-system / apt-get install redis-server)",
)


async def test_two_limiters_share_one_token_budget(redis_url: str) -> None:
    # tpm 6000 = 100 tokens/s. Two "processes" (limiters): a spends 20 tokens, so b's next
    # request waits for those 20 tokens' time, about 0.2 s, on the server's clock.
    a = RedisRateLimiter(redis_url, key="test:shared", tpm=6000)
    b = RedisRateLimiter(redis_url, key="test:shared", tpm=6000)
    try:
        assert await a.acquire(20) == 0.0
        waited = await b.acquire(10)
        assert 0.1 <= waited <= 1.0
    finally:
        await a.aclose()
        await b.aclose()


async def test_rpm_is_paced_across_limiters_with_no_burst(redis_url: str) -> None:
    """A fresh (or idle) key banks nothing: twenty requests from two limiters at 1,200 a minute
    take at least nineteen 50 ms intervals (the token bucket let all twenty through at once,
    which after a quiet spell put up to twice the RPM into one minute)."""
    import redis.asyncio as aioredis

    a = RedisRateLimiter(redis_url, key="test:rpm", rpm=1200)
    b = RedisRateLimiter(redis_url, key="test:rpm", rpm=1200)
    client = aioredis.from_url(redis_url)
    try:
        granted: list[float] = []
        for i in range(20):
            await (a if i % 2 else b).acquire()
            granted.append(time.monotonic())
        assert granted[-1] - granted[0] >= 19 * 0.05 * 0.9
        assert 0 < await client.pttl("test:rpm") <= 1_000 + 50 + 200  # gone once its time passed
    finally:
        await a.aclose()
        await b.aclose()
        await client.aclose()


async def test_engine_uses_redis_when_configured(redis_url: str) -> None:
    import redis.asyncio as aioredis

    from courseforge.config import Settings
    from courseforge.engine import Engine
    from courseforge.providers.embeddings import CachedEmbedder, HashingEmbedder
    from courseforge.sim import SimServer, load_profile
    from engine_helpers import example_analysis, loopback_config

    async with SimServer(load_profile("ideal"), time_scale=0.0) as sim:
        config = loopback_config(sim.base_url)
        config["providers"]["loop"].update(redis_url=redis_url, rpm=10_000, tpm=50_000_000)
        engine = Engine(Settings.model_validate(config), env={}, embedder=CachedEmbedder(HashingEmbedder()))
        try:
            result = await engine.generate(example_analysis())
        finally:
            await engine.aclose()
    assert result.course is not None
    client = aioredis.from_url(redis_url)
    try:
        assert await client.exists("courseforge:ratelimit:loop")
    finally:
        await client.aclose()
