"""Embedders: the hashing stand-in's properties, the cache, the helpers, and (embedding_model) the real model
loading lazily off the event loop."""

from __future__ import annotations

import asyncio
import itertools
import math
import sys
import threading
from collections.abc import Sequence
from typing import Any

import pytest

from courseforge.errors import ConfigError
from courseforge.providers import embeddings
from courseforge.providers.base import Embedder
from courseforge.providers.embeddings import (
    CachedEmbedder,
    HashingEmbedder,
    SentenceTransformerEmbedder,
    _CoreSlots,
    cosine,
    make_embedder,
    max_cosine,
)

PYTHON = "Python list comprehensions transform and filter the items of a list in one expression."
PYTHON_2 = "A list comprehension filters a Python list and transforms each item into a new list."
BAKING = "Knead the bread dough for ten minutes, then let it rise in a warm place for an hour."


def norm(vec: Sequence[float]) -> float:
    return math.sqrt(sum(x * x for x in vec))


class CountingEmbedder(Embedder):
    """Records every batch it is asked for; vectors come from the hashing embedder."""

    name = "counting"
    dimensions = 64

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self._inner = HashingEmbedder(64)

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.batches.append(list(texts))
        return await self._inner.embed(texts)


async def test_hashing_vectors_are_unit_length_and_deterministic() -> None:
    embedder = HashingEmbedder()
    vectors = await embedder.embed([PYTHON, BAKING, "x"])
    assert [len(v) for v in vectors] == [512, 512, 512]
    assert all(math.isclose(norm(v), 1.0, rel_tol=1e-9) for v in vectors)
    assert vectors == await HashingEmbedder().embed([PYTHON, BAKING, "x"])
    assert embedder.name == "hashing"
    assert embedder.dimensions == 512


async def test_hashing_similarity_orders_texts_lexically() -> None:
    python, python_2, baking, shouted = await HashingEmbedder().embed(
        [PYTHON, PYTHON_2, BAKING, PYTHON.upper()]
    )
    assert cosine(python, shouted) == pytest.approx(1.0)  # lowercased before hashing
    assert cosine(python, python_2) > 0.3
    assert abs(cosine(python, baking)) < 0.15


async def test_hashing_empty_and_stop_word_text_is_the_zero_vector() -> None:
    empty, stop_words, other = await HashingEmbedder(16).embed(["", "the of and to", PYTHON])
    assert empty == [0.0] * 16
    assert stop_words == [0.0] * 16
    assert cosine(empty, other) == 0.0


def test_hashing_rejects_tiny_dimensions() -> None:
    with pytest.raises(ValueError):
        HashingEmbedder(1)


async def test_cache_embeds_only_misses_in_one_batch() -> None:
    inner = CountingEmbedder()
    cached = CachedEmbedder(inner)
    first = await cached.embed([PYTHON, BAKING])
    second = await cached.embed([BAKING, PYTHON_2, PYTHON, PYTHON_2])
    assert inner.batches == [[PYTHON, BAKING], [PYTHON_2]]
    assert second[0] == first[1] and second[2] == first[0] and second[1] == second[3]
    stats = cached.stats()
    # 2 misses, then BAKING and PYTHON hit the cache, PYTHON_2 misses once and its repeat is free.
    assert (stats.hits, stats.misses, stats.size) == (3, 3, 3)
    assert (cached.name, cached.dimensions) == ("counting", 64)


async def test_cache_evicts_least_recently_used() -> None:
    inner = CountingEmbedder()
    cached = CachedEmbedder(inner, max_items=2)
    await cached.embed(["a text", "b text"])
    await cached.embed(["a text"])  # a is now the most recently used
    await cached.embed(["c text"])  # evicts b
    await cached.embed(["a text", "b text"])
    assert inner.batches == [["a text", "b text"], ["c text"], ["b text"]]
    assert cached.stats().size == 2


async def test_cache_hands_out_vectors_nobody_can_change() -> None:
    cached = CachedEmbedder(CountingEmbedder())
    (vec,) = await cached.embed([PYTHON])
    with pytest.raises(TypeError):
        vec[0] = 99.0  # type: ignore[index]
    (again,) = await cached.embed([PYTHON])
    assert again == vec and again[0] != 99.0


async def test_cache_of_nothing_calls_nothing() -> None:
    inner = CountingEmbedder()
    assert await CachedEmbedder(inner).embed([]) == []
    assert inner.batches == []


def test_cosine_and_max_cosine() -> None:
    a, b, c = [1.0, 0.0], [0.0, 1.0], [math.sqrt(0.5), math.sqrt(0.5)]
    assert cosine(a, a) == 1.0
    assert cosine(a, b) == 0.0
    assert max_cosine(a, [b, c]) == pytest.approx(math.sqrt(0.5))
    with pytest.raises(ValueError):
        cosine(a, [1.0])
    with pytest.raises(ValueError):
        max_cosine(a, [])


def test_make_embedder_picks_by_name_without_loading_anything() -> None:
    hashing = make_embedder("hashing")
    assert isinstance(hashing.inner, HashingEmbedder) and hashing.name == "hashing"
    minilm = make_embedder("all-MiniLM-L6-v2", batch_size=8)
    assert isinstance(minilm.inner, SentenceTransformerEmbedder)
    assert (minilm.name, minilm.dimensions) == ("all-MiniLM-L6-v2", 384)


async def test_missing_packages_raise_config_error_naming_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # import now fails
    with pytest.raises(ConfigError) as caught:
        await SentenceTransformerEmbedder("no-such/model-for-tests").embed(["hello"])
    assert caught.value.problems[0][0] == "gates.embedding_model"
    assert "'hashing'" in caught.value.problems[0][1]


async def test_embedding_nothing_does_not_load_the_model() -> None:
    assert await SentenceTransformerEmbedder("no-such/model-for-tests").embed([]) == []


@pytest.mark.embedding_model
async def test_unknown_model_name_raises_config_error() -> None:
    with pytest.raises(ConfigError) as caught:
        await SentenceTransformerEmbedder("/nonexistent/embedding-model").embed(["hello"])
    path, reason = caught.value.problems[0]
    assert path == "gates.embedding_model" and "/nonexistent/embedding-model" in reason


@pytest.mark.embedding_model
async def test_minilm_vectors_are_unit_length() -> None:
    embedder = SentenceTransformerEmbedder()
    python, python_2, baking = await embedder.embed([PYTHON, PYTHON_2, BAKING])
    assert len(python) == 384
    assert all(math.isclose(norm(v), 1.0, abs_tol=1e-5) for v in (python, python_2, baking))
    assert cosine(python, python_2) > cosine(python, baking) + 0.4


async def _loop_gaps(work: Any) -> tuple[Any, float, list[float]]:
    """Run `work` (an awaitable) beside a 10 ms ticker: its result, its wall time, the gaps."""
    loop = asyncio.get_running_loop()
    ticks: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        while not done.is_set():
            ticks.append(loop.time())
            await asyncio.sleep(0.01)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    started = loop.time()
    result = await work
    elapsed = loop.time() - started
    done.set()
    await task
    return result, elapsed, [b - a for a, b in itertools.pairwise(ticks)]


@pytest.mark.embedding_model
async def test_embed_does_not_block_the_event_loop() -> None:
    """A ticker keeps ticking while the model loads and while it encodes 480 texts.

    Importing torch in the worker thread takes the GIL in bursts (≈ 0.2 s measured on a quiet
    machine, more on a loaded one), so the load's bound is loose; a blocked loop would stall for
    the whole load (seconds). The encode runs in parts, side by side on the cores' slots: a loop
    blocked by it would show one gap as long as a part (half the encode, or all of it); one that
    runs beside it ticks through it. The bounds are shares of the encode's own wall time, not
    fixed seconds, so that a loaded machine, which slows both, cannot fail it (a fixed 0.6 s
    failed once in a cold CI run at a low CPU share)."""
    embedder = SentenceTransformerEmbedder()
    _, load_s, load_gaps = await _loop_gaps(embedder.embed(["warm up"]))
    if load_s > 3.0:  # this call loaded the model: the loop ticked through most of the load
        assert load_gaps, f"the loop never ticked in the {load_s:.1f}s load"
        assert max(load_gaps) < load_s / 2, f"event loop blocked for {max(load_gaps):.2f}s of {load_s:.1f}s"

    texts = [f"{PYTHON} Variation {i}: {BAKING}" for i in range(480)]
    vectors, elapsed, gaps = await _loop_gaps(embedder.embed(texts))
    assert len(vectors) == 480
    assert elapsed > 0.5, "too fast to tell; use more texts"
    assert len(gaps) >= 20, f"the loop ticked {len(gaps)} times in {elapsed:.2f}s"
    assert max(gaps) < elapsed / 4, f"event loop blocked for {max(gaps):.2f}s of {elapsed:.2f}s"


class CountingEncoder(SentenceTransformerEmbedder):
    """The real batching with a fake model: each text's vector is its length, one batch a call."""

    def __init__(self, workers: int = 1, barrier: threading.Barrier | None = None) -> None:
        super().__init__("fake-model", workers=workers)
        self.batches: list[list[str]] = []
        self.fail_next = False
        self.barrier = barrier

    def _encode(self, texts: list[str]) -> list[list[float]]:
        self.batches.append(list(texts))
        if self.barrier is not None:
            self.barrier.wait()  # every part must be encoding at once to pass
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("model crashed")
        return [[float(len(t)), 1.0] for t in texts]


async def test_concurrent_requests_are_encoded_as_one_batch() -> None:
    embedder = CountingEncoder()
    asks = [[f"lesson {i} chunk {k}" for k in range(4)] + ["shared outcome"] for i in range(12)]
    results = await asyncio.gather(*(embedder.embed(texts) for texts in asks))
    assert len(embedder.batches) == 1  # twelve lessons' gates, one encode
    assert len(embedder.batches[0]) == 12 * 4 + 1  # the shared text once
    for texts, vectors in zip(asks, results, strict=True):
        assert vectors == [[float(len(t)), 1.0] for t in texts]
    # Later requests start a new batch.
    assert await embedder.embed(["again"]) == [[5.0, 1.0]]
    assert len(embedder.batches) == 2


async def test_a_failed_batch_fails_its_callers_and_the_next_batch_works() -> None:
    embedder = CountingEncoder()
    embedder.fail_next = True
    results = await asyncio.gather(embedder.embed(["a"]), embedder.embed(["bb"]), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    assert await embedder.embed(["ccc"]) == [[3.0, 1.0]]


async def test_cache_keeps_vectors_packed_not_as_python_floats() -> None:
    """A cached 512-number vector costs ≈ 4 KB packed (float64), not ≈ 16 KB of float objects:
    in a service running many courses the cache was most of the process's memory."""
    import tracemalloc

    cached = CachedEmbedder(HashingEmbedder(512))
    texts = [f"lesson {i} on topic {i * 7} with words w{i} v{i}" for i in range(300)]
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    vectors = await cached.embed(texts)
    del vectors
    kept = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert cached.stats().size == 300
    assert kept / 300 < 6_000, f"{kept / 300:.0f} bytes per cached vector"
    (again,) = await cached.embed([texts[5]])
    assert list(again) == list((await HashingEmbedder(512).embed([texts[5]]))[0])


async def test_a_batch_is_dealt_into_parts_encoded_side_by_side(monkeypatch: pytest.MonkeyPatch) -> None:
    """With one torch thread an encode uses one core: `workers` parts of a waiting batch run at
    once in worker threads (each part waits at a barrier that only opens when all are in), and
    every caller gets its own texts' vectors back in order."""
    monkeypatch.setattr(embeddings, "_CORE_SLOTS", _CoreSlots(2))  # whatever cores this machine has
    barrier = threading.Barrier(2, timeout=30)
    embedder = CountingEncoder(workers=2, barrier=barrier)
    asks = [[f"lesson {i} chunk {k} " + "x" * (i * k) for k in range(4)] for i in range(6)]
    results = await asyncio.gather(*(embedder.embed(texts) for texts in asks))
    assert len(embedder.batches) == 2
    assert sorted(len(b) for b in embedder.batches) == [12, 12]
    assert sorted(t for b in embedder.batches for t in b) == sorted(t for texts in asks for t in texts)
    for texts, vectors in zip(asks, results, strict=True):
        assert vectors == [[float(len(t)), 1.0] for t in texts]
    # Dealt longest first: each part holds one of the two longest texts.
    longest = sorted((t for texts in asks for t in texts), key=len)[-2:]
    assert all(any(t in b for t in longest) for b in embedder.batches)
    # One text is not split.
    embedder.barrier = None
    assert await embedder.embed(["again"]) == [[5.0, 1.0]]
    assert embedder.batches[-1] == ["again"]


async def test_a_batch_is_not_split_while_another_encode_holds_a_core(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two encodes at once cost more CPU than one: a busy process (another course's encode on
    the other core) encodes a batch whole."""
    slots = _CoreSlots(2)
    monkeypatch.setattr(embeddings, "_CORE_SLOTS", slots)
    embedder = CountingEncoder(workers=2)
    held = slots.acquire(1)
    vectors = await embedder.embed([f"text {i}" for i in range(8)])
    slots.release(held)
    assert len(embedder.batches) == 1 and len(vectors) == 8


def test_core_slots_share_the_cores_among_encodes() -> None:
    """An encode holds as many cores as it has torch threads (at most all): a two-thread encode
    waits for a one-thread encode to end."""
    slots = _CoreSlots(2)
    assert slots.acquire(5) == 2  # capped at every core
    slots.release(2)
    assert slots.acquire(1) == 1
    done = threading.Event()
    held: list[int] = []

    def two_threads() -> None:
        held.append(slots.acquire(2))
        done.set()

    worker = threading.Thread(target=two_threads)
    worker.start()
    slots.release(1)
    assert done.wait(30)
    worker.join(30)
    assert held == [2]


@pytest.mark.embedding_model
async def test_encodes_side_by_side_give_the_vectors_of_one_encode() -> None:
    """Two parts encoded at once with one torch thread each: the same vectors (within float32
    rounding) as the texts encoded in one call, so every gate's score is unchanged."""
    texts = [f"{PYTHON} Variation {i}: " + BAKING * (i % 4) for i in range(40)]
    alone = await SentenceTransformerEmbedder(threads=1, workers=1, dtype="float32").embed(texts)
    side_by_side = SentenceTransformerEmbedder(threads=1, workers=2, dtype="float32")
    assert side_by_side._workers == 2
    together = await side_by_side.embed(texts)
    assert (
        max(abs(a - b) for u, v in zip(alone, together, strict=True) for a, b in zip(u, v, strict=True))
        < 1e-5
    )


@pytest.mark.embedding_model
async def test_bfloat16_moves_cosines_by_less_than_a_hundredth() -> None:
    """bfloat16 products (`gates.embedding_dtype`): every text's vector stays within cosine
    0.999 of float32's, and no pairwise cosine (what the gates compare with their thresholds)
    moves by 0.01."""
    import numpy as np

    texts = [PYTHON, PYTHON_2, BAKING, *(f"{PYTHON} Variation {i}: " + BAKING * (i % 3) for i in range(20))]
    exact = np.asarray(await SentenceTransformerEmbedder(dtype="float32").embed(texts))
    bf16 = np.asarray(await SentenceTransformerEmbedder(dtype="bfloat16").embed(texts))
    assert (exact * bf16).sum(axis=1).min() > 0.999
    assert np.abs(exact @ exact.T - bf16 @ bf16.T).max() < 0.01


def test_embedding_threads_and_batch_size_are_checked() -> None:
    with pytest.raises(ValueError, match="threads"):
        SentenceTransformerEmbedder(threads=0)
    with pytest.raises(ValueError, match="batch_size"):
        SentenceTransformerEmbedder(batch_size=0)
    with pytest.raises(ValueError, match="workers"):
        SentenceTransformerEmbedder(workers=0)
    with pytest.raises(ValueError, match="dtype"):
        SentenceTransformerEmbedder(dtype="float16")
    assert make_embedder("all-MiniLM-L6-v2", dtype="float32").inner._dtype == "float32"  # type: ignore[attr-defined]
    inner = make_embedder("all-MiniLM-L6-v2", batch_size=8, threads=2).inner
    assert isinstance(inner, SentenceTransformerEmbedder)
    assert (inner._batch_size, inner._threads) == (8, 2)


async def test_the_hashing_embedders_feature_memo_is_not_walked_by_the_collector() -> None:
    import gc

    from courseforge.providers import embeddings

    await HashingEmbedder().embed([PYTHON, BAKING])
    assert len(embeddings._FEATURE_HASHES) > 10
    assert not gc.is_tracked(embeddings._FEATURE_HASHES)
