"""The response cache a runner hands its courses: built from the config and the job store.

`open_response_cache(settings, store)` is None when `cache.mode` is off; otherwise a
`cache.ResponseCache` on the store's `response_cache` table (or on Redis with
`cache.redis_url`), under `cache.namespace` (default: the config's digest; a tenant passes its
own), keyed with the version of our prompt templates.
"""

from __future__ import annotations

from ..cache import CacheBackend, MemoryBackend, RedisBackend, ResponseCache, StoreBackend, config_namespace
from ..cache.semantic import SemanticIndex
from ..config import Settings
from ..pipeline.prompts import TEMPLATES_VERSION
from ..providers.embeddings import make_embedder
from ..storage import Store

__all__ = ["open_response_cache", "without_cache"]


def open_response_cache(
    settings: Settings, store: Store | None, *, namespace: str | None = None
) -> ResponseCache | None:
    """The cache of `settings.cache`; entries in `store` (in memory when None)."""
    cfg = settings.cache
    if cfg.mode == "off":
        return None
    backend: CacheBackend
    if cfg.redis_url:
        backend = RedisBackend(cfg.redis_url)
    elif store is not None:
        backend = StoreBackend(store)
    else:
        backend = MemoryBackend()
    semantic = None
    if cfg.mode == "semantic":
        semantic = SemanticIndex(make_embedder(cfg.semantic_embedding_model), cfg.semantic_threshold)
    return ResponseCache(
        backend,
        semantic=semantic,
        namespace=namespace or cfg.namespace or config_namespace(settings),
        templates=TEMPLATES_VERSION,
        ttl_s=cfg.ttl_s,
        max_entries=cfg.max_entries,
    )


def without_cache(settings: Settings) -> Settings:
    """`settings` with the response cache off (`--no-cache`)."""
    return settings.model_copy(update={"cache": settings.cache.model_copy(update={"mode": "off"})})
