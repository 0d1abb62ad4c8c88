"""The semantic cache on the shipped labelled near-duplicate pairs
(`src/courseforge/cache/data/near_duplicates.jsonl`): precision and hit rate at the default
threshold (`cache.semantic_threshold`) and at a sweep of thresholds, per kind of pair, and
the lowest threshold with precision 1.0. `--embedder all-MiniLM-L6-v2` measures MiniLM (loads
torch: slow); the default is the hashing embedder the default config uses.

    python benchmarks/semantic_cache.py [--embedder hashing]
"""

from __future__ import annotations

import argparse
import asyncio
from collections import Counter

from courseforge.cache.semantic import calibrate, evaluate, load_pairs, pair_scores
from courseforge.config import CacheSettings
from courseforge.providers.embeddings import make_embedder


async def main(name: str) -> None:
    pairs = load_pairs()
    embedder = make_embedder(name)
    default = CacheSettings().semantic_threshold
    kinds = Counter(p.kind for p in pairs)
    print(f"{len(pairs)} labelled pairs: " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())))
    at = await evaluate(pairs, embedder, default)
    print(
        f"embedder {name}, default threshold {default}: precision {at['precision']:.3f}, "
        f"hit rate {at['hit_rate']:.3f} ({at['served']} served, {at['wrong']} wrong)"
    )
    for t in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9):
        r = await evaluate(pairs, embedder, t)
        print(f"  threshold {t:.2f}: precision {r['precision']:.3f}, hit rate {r['hit_rate']:.3f}")
    low = await calibrate(pairs, embedder)
    print(f"lowest threshold with precision 1.0: {low['threshold']:.2f} (hit rate {low['hit_rate']:.3f})")
    scores = await pair_scores(pairs, embedder)
    blocked = Counter(p.kind for s, p in zip(scores, pairs, strict=True) if s is None)
    print(
        "pairs the exact fields or guard terms keep apart, by kind: "
        + ", ".join(f"{k} {n}" for k, n in sorted(blocked.items()))
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--embedder", default=CacheSettings().semantic_embedding_model)
    asyncio.run(main(parser.parse_args().embedder))
