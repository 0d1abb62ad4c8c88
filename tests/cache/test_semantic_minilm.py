"""Slow: the semantic cache on the labelled near-duplicate pairs with the real
all-MiniLM-L6-v2 (run with `-s` to see its figures; `benchmarks/semantic_cache.py --embedder
all-MiniLM-L6-v2` prints the sweep). Not run by the helper that wrote it (machine rules: no
embedding-model runs on the shared cores); the integrator's `make test` runs it."""

from __future__ import annotations

import pytest

from courseforge.cache.semantic import calibrate, evaluate, load_pairs
from courseforge.config import CacheSettings
from courseforge.providers.embeddings import make_embedder

pytestmark = pytest.mark.embedding_model


async def test_precision_is_one_with_minilm_at_the_default_threshold() -> None:
    pairs = load_pairs()
    embedder = make_embedder("all-MiniLM-L6-v2")
    result = await evaluate(pairs, embedder, CacheSettings().semantic_threshold)
    calibrated = await calibrate(pairs, embedder)
    print(f"MiniLM: {result} calibrated: {calibrated}")
    assert result["precision"] == 1.0 and result["wrong"] == 0
    assert result["hit_rate"] > 0
    assert calibrated["precision"] == 1.0
