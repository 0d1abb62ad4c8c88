"""Paying once: the response cache (exact, and semantic opt-in) kept across jobs.

`ResponseCache` looks a request up under a namespace (a tenant, or the config's digest) and
keeps a provider's answer; `engine.calls.CourseCalls.call`, where calls are metered, is its one
user. Keys are in `keys`, backends (job store, Redis, memory) in `exact`.
"""

from .exact import CacheBackend, MemoryBackend, RedisBackend, ResponseCache, StoreBackend
from .keys import KEY_VERSION, canonical_request, config_namespace, request_key
from .semantic import SemanticIndex, SemanticView, guard_terms, split_request

__all__ = [
    "KEY_VERSION",
    "CacheBackend",
    "MemoryBackend",
    "RedisBackend",
    "ResponseCache",
    "SemanticIndex",
    "SemanticView",
    "StoreBackend",
    "canonical_request",
    "config_namespace",
    "guard_terms",
    "request_key",
    "split_request",
]
