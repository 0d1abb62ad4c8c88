"""The simulator's provider prompt cache: repeated leading messages are reported as cached.

Real providers cache a request's prefix and bill the part a later request repeats at a
cache-read price, reporting it as `usage.prompt_tokens_details.cached_tokens` (OpenAI and
OpenRouter) in blocks once it is long enough. Here a prefix is whole leading messages (a
simplification of token prefixes: our prompts differ only after their shared system message),
kept per model for the server's life.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .profiles import ModelProfile

__all__ = ["PromptCache"]


def _has_breakpoint(message: Mapping[str, Any]) -> bool:
    content = message.get("content")
    return isinstance(content, list) and any(
        isinstance(p, Mapping) and p.get("cache_control") for p in content
    )


class PromptCache:
    def __init__(self, count: Callable[[Mapping[str, Any]], int]) -> None:
        """`count(message)`: the tokens one message counts for."""
        self._count = count
        self._seen: dict[str, set[str]] = {}

    def usage(self, model: str, messages: Sequence[Mapping[str, Any]], mp: ModelProfile) -> tuple[int, int]:
        """(cached, written) prompt tokens of this request, then remember its prefixes."""
        if mp.prompt_cache_min_tokens <= 0 or not messages:
            return 0, 0
        seen = self._seen.setdefault(model, set())
        digest = hashlib.sha256()
        total, cached, written = 0, 0, 0
        for message in messages:
            digest.update(json.dumps(message, sort_keys=True, default=str).encode())
            total += self._count(message)
            key = digest.hexdigest()
            if key in seen:
                cached = total
            elif _has_breakpoint(message) and total >= mp.prompt_cache_min_tokens:
                written = total
            if total >= mp.prompt_cache_min_tokens:
                seen.add(key)
        if cached < mp.prompt_cache_min_tokens:
            cached = 0
        block = mp.prompt_cache_block_tokens
        return cached // block * block, 0 if cached else written
