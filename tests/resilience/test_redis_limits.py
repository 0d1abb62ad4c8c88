"""Rate limits shared through a real redis-server started on 127.0.0.1 for this module
(`redis_url`, tests/conftest.py)."""

from __future__ import annotations

import asyncio
import time

import pytest

from courseforge.resilience import RedisRateLimiter
from courseforge.testing.processes import redis_binary

pytestmark = pytest.mark.skipif(
    redis_binary() is None,
    reason="redis-server is not installed (make deps-system / apt-get install redis-server)",
)


async def test_two_limiters_share_one_token_budget(redis_url: str) -> None:
    # tpm 6000 = 100 tokens/s. Two "processes" (limiters): a spends 20 tokens, so b is admitted
    # no sooner than those 20 tokens' time, 0.2 s, after a, on the server's clock, and both
    # spends advance the one key's token time. (How long b itself waits depends on how long the
    # machine took between the two calls: none when that was over 0.2 s, under load.)
    import redis.asyncio as aioredis

    a = RedisRateLimiter(redis_url, key="test:shared", tpm=6000)
    b = RedisRateLimiter(redis_url, key="test:shared", tpm=6000)
    client = aioredis.from_url(redis_url)
    try:
        seconds, micros = await client.time()
        server_start = seconds + micros / 1e6
        started = time.monotonic()
        assert await a.acquire(20) == 0.0
        waited = await b.acquire(10)
        elapsed = time.monotonic() - started
        assert elapsed >= 0.2 * 0.95 and waited <= elapsed
        token_time = float(await client.hget("test:shared", "t"))
        assert token_time >= server_start + 0.3 - 0.001  # 20 + 10 tokens spent from one budget
    finally:
        await a.aclose()
        await b.aclose()
        await client.aclose()


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
        client = aioredis.from_url(redis_url)
        # The key lives about a second past the last call it paced, so it is looked for while
        # the course runs (after the course, a loaded machine can take longer than that).
        seen = False
        try:
            course = asyncio.create_task(engine.generate(example_analysis()))
            while not course.done():
                seen = seen or bool(await client.exists("courseforge:ratelimit:loop"))
                await asyncio.sleep(0.01)
            result = await course
        finally:
            await engine.aclose()
            await client.aclose()
    assert result.course is not None
    assert seen
