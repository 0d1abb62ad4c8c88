"""Redundancy across a course: near-duplicate lessons and exercises, and self-consistency.

Two measures, because each misses what the other sees: embedding cosine catches a paraphrase
(same ideas, new words), a lexical measure catches a copy with a few words changed that a
long-text embedding may blur. Lessons use the Jaccard of their word 3-shingles (what MinHash
estimates; exact is cheap for a course's few dozen lessons); exercise questions, short, use
rapidfuzz's token-sort ratio. Self-consistency (seed 000 pattern 3) reuses the cosine: samples
of one lesson that disagree mean the model is unsure.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..providers.embeddings import cosine
from .base import Gate, GateContext, GateResult

__all__ = [
    "ConsistencyGate",
    "Duplicate",
    "RedundancyGate",
    "find_duplicates",
    "min_pairwise_cosine",
    "question_ratio",
    "shingle_overlap",
    "text_vectors",
]

_WORD = re.compile(r"\w+")


@dataclass(frozen=True, slots=True)
class Duplicate:
    later: str
    earlier: str
    cosine: float
    #: 0-100 lexical similarity.
    lexical: float
    kind: str = "lesson"  # or "exercise"


def _shingles(text: str, n: int = 3) -> set[tuple[str, ...]]:
    words = _WORD.findall(text.casefold())
    return {tuple(words[i : i + n]) for i in range(max(1, len(words) - n + 1))}


def shingle_overlap(a: str, b: str) -> float:
    """Jaccard of word 3-shingles, 0-100."""
    return _jaccard(_shingles(a), _shingles(b))


def _jaccard(sa: set[tuple[str, ...]], sb: set[tuple[str, ...]]) -> float:
    union = sa | sb
    return 100.0 * len(sa & sb) / len(union) if union else 100.0


def question_ratio(a: str, b: str) -> float:
    """rapidfuzz token-sort ratio (0-100) of two short texts, case and punctuation ignored."""
    from rapidfuzz import fuzz, utils

    return float(fuzz.token_sort_ratio(a, b, processor=utils.default_process))


def find_duplicates(
    items: Sequence[tuple[str, str]],
    vectors: Sequence[Sequence[float]],
    *,
    cosine_at: float,
    lexical_at: float,
    kind: str = "lesson",
) -> list[Duplicate]:
    """For each item, the first earlier item it duplicates (cosine or lexical at/above bound).
    Items are (id, text) in course order; the later one of a pair is the one to regenerate."""
    if kind == "lesson":  # shingle_overlap, each text's shingles made once
        shingles = [_shingles(text) for _, text in items]

        def lexical(i: int, j: int) -> float:
            return _jaccard(shingles[i], shingles[j])
    else:

        def lexical(i: int, j: int) -> float:
            return question_ratio(items[i][1], items[j][1])

    found = []
    for j in range(1, len(items)):
        for i in range(j):
            cos = cosine(vectors[i], vectors[j])
            lex = lexical(i, j)
            if cos >= cosine_at or lex >= lexical_at:
                found.append(Duplicate(items[j][0], items[i][0], round(cos, 4), round(lex, 1), kind))
                break
    return found


def min_pairwise_cosine(vectors: Sequence[Sequence[float]]) -> float:
    """Lowest cosine between any two of the vectors (1.0 for fewer than two)."""
    pairs = list(itertools.combinations(vectors, 2))
    return min((cosine(a, b) for a, b in pairs), default=1.0)


class RedundancyGate(Gate[Any]):
    """Fails a lesson that repeats an earlier one. Reads `context.values["duplicates"]`: the
    Duplicate records whose `later` is this lesson (lesson or its exercises)."""

    name = "redundancy"

    def check(self, artifact: Any, context: GateContext) -> GateResult:
        dups: Sequence[Duplicate] = context.values.get("duplicates") or ()
        reasons = []
        for d in dups:
            what = "lesson" if d.kind == "lesson" else "exercise"
            reasons.append(
                f"{what} {d.later} repeats {what} {d.earlier} (cosine {d.cosine:.2f}, "
                f"lexical {d.lexical:.0f}); cover different material"
            )
        score = max((d.cosine for d in dups), default=0.0)
        return GateResult(self.name, not dups, score, reasons, "pass" if not dups else "fail")


class ConsistencyGate(Gate[Any]):
    """Self-consistency: the lowest pairwise cosine of a lesson's samples must reach the bound,
    else the model is unsure and the task escalates (severe). Reads `values["consistency"]`."""

    name = "consistency"

    def __init__(self, min_cosine: float) -> None:
        self.min_cosine = min_cosine

    def check(self, artifact: Any, context: GateContext) -> GateResult:
        value = context.values.get("consistency")
        if value is None:
            raise ValueError("ConsistencyGate needs context.values['consistency']")
        score = float(value)
        if score >= self.min_cosine:
            return GateResult(self.name, True, score, (), "pass")
        reason = (
            f"samples of this lesson disagree (lowest pairwise cosine {score:.2f} < {self.min_cosine:.2f}): "
            "the model is unsure; state the facts plainly and follow the brief"
        )
        return GateResult(self.name, False, score, [reason], "severe")


_CHUNK_WORDS = 120


async def text_vectors(texts: Sequence[str], embedder: Any) -> list[list[float]]:
    """One unit vector per text, averaged over 120-word pieces (MiniLM reads ≈ 190 words and
    drops the rest, so a long lesson embedded whole would be compared on its opening only).
    One batched `embed` call for every piece of every text."""
    import math
    import operator

    from .gates import _chunks  # the similarity gate's pieces: same texts, so cache hits

    pieces: list[str] = []
    owners: list[int] = []
    for i, text in enumerate(texts):
        for piece in _chunks(text, _CHUNK_WORDS):
            pieces.append(piece)
            owners.append(i)
    vectors = await embedder.embed(pieces)
    dims = len(vectors[0]) if vectors else 0
    sums = [[0.0] * dims for _ in texts]
    for owner, piece, vec in zip(owners, pieces, vectors, strict=True):
        weight = max(1, len(piece.split()))
        sums[owner] = [r + weight * v for r, v in zip(sums[owner], vec, strict=True)]
    out = []
    for row in sums:
        norm = math.sqrt(math.fsum(map(operator.mul, row, row)))
        out.append([x / norm for x in row] if norm else row)
    return out
