"""The engine's own parts built from settings."""

from __future__ import annotations

import pytest

from courseforge.config import Settings
from courseforge.engine import Engine
from courseforge.providers.embeddings import CachedEmbedder


@pytest.mark.parametrize("items", [3, 50_000])
async def test_the_embedding_cache_keeps_as_many_texts_as_the_settings_say(
    settings: Settings, items: int
) -> None:
    gates = settings.gates.model_copy(update={"embedding_model": "hashing", "embedding_cache_items": items})
    embedder = Engine(settings.model_copy(update={"gates": gates})).embedder()
    assert isinstance(embedder, CachedEmbedder)
    await embedder.embed([f"text number {i}" for i in range(5)])
    assert embedder.stats().size == min(items, 5)
