"""The exact response cache: a provider's answer kept for any later identical request.

Across jobs (a job's own checkpoints replay its calls; this serves every job of a namespace).
Entries live in the configured store (SQLite, PostgreSQL) or in Redis; each has a time to live
and a namespace holds at most `max_entries` (the oldest go first). The cache is best effort: a
store that fails to answer is a miss (and a failed write is dropped), never a failed call.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict
from decimal import Decimal
from typing import Any, Protocol

from ..config import ModelSettings
from ..domain.report import tokens_of
from ..providers import ChatRequest, ChatResponse
from ..storage import CachedResponse, Store
from .keys import canonical_request, request_key
from .semantic import SemanticIndex, SemanticView, split_request

__all__ = ["CacheBackend", "MemoryBackend", "RedisBackend", "ResponseCache", "StoreBackend"]

log = logging.getLogger("courseforge.cache")


class CacheBackend(Protocol):
    async def get(self, namespace: str, key: str, *, now: float) -> CachedResponse | None: ...

    async def put(self, entry: CachedResponse, *, max_entries: int) -> None: ...


class StoreBackend:
    """Entries in the job store's `response_cache` table."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def get(self, namespace: str, key: str, *, now: float) -> CachedResponse | None:
        return await self.store.get_cached_response(namespace, key, now=now)

    async def put(self, entry: CachedResponse, *, max_entries: int) -> None:
        await self.store.put_cached_response(entry, max_entries=max_entries)


class MemoryBackend:
    """Entries in a dict of this process (tests; a run with no store)."""

    def __init__(self) -> None:
        self.entries: dict[tuple[str, str], CachedResponse] = {}

    async def get(self, namespace: str, key: str, *, now: float) -> CachedResponse | None:
        entry = self.entries.get((namespace, key))
        if entry is None or (entry.expires_at is not None and entry.expires_at <= now):
            return None
        return entry

    async def put(self, entry: CachedResponse, *, max_entries: int) -> None:
        self.entries[entry.namespace, entry.key] = entry
        mine = sorted(
            (e for e in self.entries.values() if e.namespace == entry.namespace), key=lambda e: e.created_at
        )
        for old in mine[: max(0, len(mine) - max_entries)]:
            del self.entries[old.namespace, old.key]


def _to_json(entry: CachedResponse) -> str:
    data = asdict(entry)
    data["cost_usd"] = str(entry.cost_usd)
    return json.dumps(data, ensure_ascii=False)


def _from_json(raw: str | bytes) -> CachedResponse:
    data: dict[str, Any] = json.loads(raw)
    data["cost_usd"] = Decimal(data["cost_usd"])
    return CachedResponse(**data)


class RedisBackend:
    """Entries in Redis (`cache.redis_url`; the `redis` extra): one string per entry with the
    entry's TTL, and a sorted set per namespace by age that bounds its size."""

    def __init__(self, url: str, *, prefix: str = "courseforge:cache") -> None:
        import redis.asyncio as aioredis

        self._redis: Any = aioredis.from_url(url)
        self._prefix = prefix

    def _key(self, namespace: str, key: str) -> str:
        return f"{self._prefix}:{namespace}:{key}"

    async def get(self, namespace: str, key: str, *, now: float) -> CachedResponse | None:
        raw = await self._redis.get(self._key(namespace, key))
        if raw is None:
            return None
        entry = _from_json(raw)
        return None if entry.expires_at is not None and entry.expires_at <= now else entry

    async def put(self, entry: CachedResponse, *, max_entries: int) -> None:
        index = f"{self._prefix}:{entry.namespace}"
        name = self._key(entry.namespace, entry.key)
        ttl = None if entry.expires_at is None else max(1, int(entry.expires_at - entry.created_at))
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(name, _to_json(entry), ex=ttl)
            pipe.zadd(index, {entry.key: entry.created_at})
            await pipe.execute()
        excess = await self._redis.zcard(index) - max_entries
        if excess > 0:
            old = await self._redis.zrange(index, 0, excess - 1)
            if old:
                keys = [self._key(entry.namespace, k.decode() if isinstance(k, bytes) else k) for k in old]
                await self._redis.delete(*keys)
                await self._redis.zrem(index, *old)

    async def aclose(self) -> None:
        await self._redis.aclose()


class ResponseCache:
    """Looks requests up and keeps answers, under one namespace."""

    def __init__(
        self,
        backend: CacheBackend,
        *,
        namespace: str,
        templates: str,
        ttl_s: float | None = None,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.time,
        semantic: SemanticIndex | None = None,
    ) -> None:
        """`semantic`: also serve near-duplicate requests (`cache.mode: semantic`)."""
        self.backend = backend
        self.semantic = semantic
        self.namespace = namespace
        self.templates = templates
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._clock = clock

    def for_namespace(self, namespace: str) -> ResponseCache:
        """The same cache under another namespace (a tenant's)."""
        return ResponseCache(
            self.backend,
            namespace=namespace,
            templates=self.templates,
            ttl_s=self.ttl_s,
            max_entries=self.max_entries,
            clock=self._clock,
            semantic=self.semantic,
        )

    def key(self, model: ModelSettings, request: ChatRequest, *, attempt: int, sample: int) -> str:
        return request_key(model, request, templates=self.templates, attempt=attempt, sample=sample)

    async def lookup(
        self, model: ModelSettings, request: ChatRequest, *, attempt: int = 1, sample: int = 0
    ) -> CachedResponse | None:
        key = self.key(model, request, attempt=attempt, sample=sample)
        try:
            found = await self.backend.get(self.namespace, key, now=self._clock())
            if found is None and self.semantic is not None:
                near = await self.semantic.find(self.namespace, self._view(model, request, attempt, sample))
                if near is not None:
                    found = await self.backend.get(self.namespace, near[0], now=self._clock())
            return found
        except Exception as exc:  # a cache that cannot answer is a miss
            log.warning("response cache lookup failed (%s): treated as a miss", exc)
            return None

    def _view(self, model: ModelSettings, request: ChatRequest, attempt: int, sample: int) -> SemanticView:
        exact = canonical_request(model, request, templates=self.templates, attempt=attempt, sample=sample)
        del exact["messages"]
        return split_request(request, exact)

    async def keep(
        self,
        model_id: str,
        model: ModelSettings,
        request: ChatRequest,
        response: ChatResponse,
        *,
        cost_usd: Decimal,
        latency_ms: float,
        attempt: int = 1,
        sample: int = 0,
    ) -> None:
        now = self._clock()
        entry = CachedResponse(
            namespace=self.namespace,
            key=self.key(model, request, attempt=attempt, sample=sample),
            model=model_id,
            text=response.text,
            **tokens_of(response.usage),
            cost_usd=cost_usd,
            latency_ms=latency_ms,
            response_model=response.model,
            finish_reason=response.finish_reason,
            native_finish_reason=response.native_finish_reason,
            created_at=now,
            expires_at=None if self.ttl_s is None else now + self.ttl_s,
        )
        try:
            await self.backend.put(entry, max_entries=self.max_entries)
            if self.semantic is not None:
                await self.semantic.add(
                    self.namespace, self._view(model, request, attempt, sample), entry.key
                )
        except Exception as exc:
            log.warning("response cache write failed (%s): answer not kept", exc)
