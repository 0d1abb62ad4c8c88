"""The semantic cache (opt-in, `cache.mode: semantic`): a near-duplicate request is served the
answer kept for an earlier one — but only when nothing that changes the answer differs.

GPTCache-style caches fail by answering a near-duplicate but different question: "why X
matters" and "why X does not matter", or a beginner and an advanced lesson, embed as
neighbours. So a request is split in two: its structured fields (the model, schema, sampling,
every system message, and the brief's fields other than free text: difficulty, language,
audience, outcome and section ids, ...) stay exact — they form the bucket a request is looked
up in — and only its free text is embedded. Within a bucket a hit needs the free texts' cosine
at or above the threshold *and* the same guard terms: negations, levels, languages, audiences
and numbers named in the text itself (a structured field hiding in prose is exact too).

The threshold is calibrated on `data/near_duplicates.jsonl` (labelled pairs: paraphrases that
should hit; negations, levels, languages, audiences that must not): `evaluate` gives the
precision and hit rate of a threshold, `calibrate` the lowest threshold with precision 1.0.
The vectors live in this process (an engine's courses share them); the answers they point to
are in the cache's backend.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from ..providers import ChatRequest, Embedder, Vector

__all__ = [
    "FREE_TEXT_FIELDS",
    "LabelledPair",
    "SemanticIndex",
    "SemanticView",
    "calibrate",
    "evaluate",
    "guard_terms",
    "load_pairs",
    "pair_scores",
    "split_request",
]

#: Brief fields whose values are free text (embedded); every other field is exact.
FREE_TEXT_FIELDS = frozenset(
    {
        "topic",
        "course_title",
        "lesson_title",
        "section",
        "section_summary",
        "guidance",
        "goals",
        "key_concepts",
    }
)
_BRIEF_MARKER = "BRIEF (JSON):"

_GUARDS = {
    "negation": r"not|no|never|without|none|neither|nor|cannot|can't|don't|doesn't|isn't|aren't|won't|avoid|except",
    "ordinal": r"first|second|third|fourth|fifth|last|next|previous|final",
    "level": r"beginners?|introductory|basic|elementary|intermediate|advanced|expert|novice",
    "language": r"english|spanish|french|german|italian|portuguese|chinese|japanese|arabic|russian|dutch|hindi",
    "audience": (
        r"children|kids|teenagers|adults|students|pupils|professionals|engineers|nurses|teachers|managers|"
        r"doctors|developers|parents|seniors"
    ),
}
_GUARD_RE = re.compile(r"\b(" + "|".join(_GUARDS.values()) + r")\b|\b\d+(?:\.\d+)?\b", re.IGNORECASE)


#: Words that say how to ask, not what about: a paraphrase may change these freely.
_PHRASING = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "of",
        "to",
        "in",
        "on",
        "for",
        "with",
        "by",
        "that",
        "this",
        "these",
        "those",
        "how",
        "what",
        "why",
        "which",
        "is",
        "are",
        "be",
        "it",
        "its",
        "write",
        "writing",
        "written",
        "explain",
        "explaining",
        "explains",
        "explanation",
        "introduce",
        "introducing",
        "introduction",
        "give",
        "giving",
        "gives",
        "lesson",
        "lessons",
        "short",
        "worked",
        "example",
        "examples",
        "exercise",
        "exercises",
        "followed",
        "then",
        "please",
        "describe",
        "describing",
        "teach",
        "teaching",
        "cover",
        "covering",
        "about",
        "work",
        "works",
        "working",
    ]
)
_WORD = re.compile(r"[a-z0-9']+")


def _stem(word: str) -> str:
    for suffix in ("ing", "ion", "es", "ed", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)]
    return word


def guard_terms(text: str) -> frozenset[str]:
    """What must be the same in two texts for one's answer to serve the other: the words that
    flip an answer (negations, ordinals, levels, languages, audiences; lower-cased), its
    numbers, and its subject — every word but the phrasing of the ask, crudely stemmed."""
    flips = {m.group(0).lower() for m in _GUARD_RE.finditer(text)}
    subject = {_stem(w) for w in _WORD.findall(text.lower()) if w not in _PHRASING}
    return frozenset(flips | subject)


@dataclass(frozen=True, slots=True)
class SemanticView:
    """A request as the semantic cache sees it: exact fields and embedded free text."""

    fields: Mapping[str, Any]
    text: str

    def bucket(self) -> str:
        return json.dumps(self.fields, sort_keys=True, ensure_ascii=False, default=str)


def split_request(request: ChatRequest, exact: Mapping[str, Any]) -> SemanticView:
    """`exact`: the fields a caller already holds exact (model, schema, sampling, templates).
    System messages and earlier turns are exact; of the last user message, the brief's free-text
    fields and the prose before the brief are the text."""
    fields: dict[str, Any] = dict(exact)
    messages = list(request.messages)
    last = next((i for i in range(len(messages) - 1, -1, -1) if messages[i].role == "user"), None)
    fields["context"] = [[m.role, m.content] for i, m in enumerate(messages) if i != last]
    if last is None:
        return SemanticView(fields, "")
    prose, _, raw = messages[last].content.partition(_BRIEF_MARKER)
    texts = [prose.strip()]
    try:
        brief = json.loads(raw) if raw.strip() else {}
    except ValueError:
        brief = None
    if isinstance(brief, dict):
        for key, value in sorted(brief.items()):
            if key in FREE_TEXT_FIELDS:
                texts.append(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))
            else:
                fields[f"brief.{key}"] = value
    elif raw.strip():
        fields["brief"] = raw.strip()
    return SemanticView(fields, "\n".join(t for t in texts if t))


def _cosine(a: Vector, b: Vector) -> float:
    return float(sum(x * y for x, y in zip(a, b, strict=True)))


@dataclass(slots=True)
class _Entry:
    vector: Vector
    guards: frozenset[str]
    key: str


@dataclass(slots=True)
class SemanticIndex:
    """Free-text vectors per bucket of exact fields, each pointing at an exact cache key."""

    embedder: Embedder
    threshold: float
    max_per_bucket: int = 1000
    _buckets: dict[tuple[str, str], list[_Entry]] = field(default_factory=dict)

    async def find(self, namespace: str, view: SemanticView) -> tuple[str, float] | None:
        """The key of the closest kept request that may answer `view`, and its cosine."""
        entries = self._buckets.get((namespace, view.bucket()))
        if not entries or not view.text:
            return None
        (vector,) = await self.embedder.embed([view.text])
        guards = guard_terms(view.text)
        best: tuple[str, float] | None = None
        for e in entries:
            if e.guards != guards:
                continue
            score = _cosine(vector, e.vector)
            if score >= self.threshold and (best is None or score > best[1]):
                best = (e.key, score)
        return best

    async def add(self, namespace: str, view: SemanticView, key: str) -> None:
        if not view.text:
            return
        (vector,) = await self.embedder.embed([view.text])
        entries = self._buckets.setdefault((namespace, view.bucket()), [])
        entries.append(_Entry(vector, guard_terms(view.text), key))
        del entries[: max(0, len(entries) - self.max_per_bucket)]


# -- the labelled set ----------------------------------------------------------------------------
_DEFAULT_FIELDS = {"model": "m", "difficulty": "beginner", "language": "en", "audience": "students"}


@dataclass(frozen=True, slots=True)
class LabelledPair:
    a: SemanticView
    b: SemanticView
    hit: bool
    kind: str


def load_pairs() -> list[LabelledPair]:
    """The shipped labelled near-duplicate pairs (`data/near_duplicates.jsonl`)."""
    raw = resources.files("courseforge.cache").joinpath("data/near_duplicates.jsonl").read_text("utf-8")
    pairs = []
    for line in raw.splitlines():
        if line.strip():
            row = json.loads(line)
            a = SemanticView({**_DEFAULT_FIELDS, **row.get("fields_a", {})}, row["a"])
            b = SemanticView({**_DEFAULT_FIELDS, **row.get("fields_b", {})}, row["b"])
            pairs.append(LabelledPair(a, b, bool(row["hit"]), str(row["kind"])))
    return pairs


async def pair_scores(pairs: Sequence[LabelledPair], embedder: Embedder) -> list[float | None]:
    """Each pair's cosine when it may hit at all (same bucket, same guards), else None."""
    vectors = await embedder.embed([t for p in pairs for t in (p.a.text, p.b.text)])
    out: list[float | None] = []
    for i, p in enumerate(pairs):
        same = p.a.bucket() == p.b.bucket() and guard_terms(p.a.text) == guard_terms(p.b.text)
        out.append(_cosine(vectors[2 * i], vectors[2 * i + 1]) if same else None)
    return out


def _rates(
    pairs: Sequence[LabelledPair], scores: Iterable[float | None], threshold: float
) -> dict[str, float]:
    hits = [s is not None and s >= threshold for s in scores]
    served = sum(hits)
    right = sum(1 for h, p in zip(hits, pairs, strict=True) if h and p.hit)
    should = sum(1 for p in pairs if p.hit)
    return {
        "threshold": threshold,
        "precision": right / served if served else 1.0,
        "hit_rate": right / should if should else 0.0,
        "served": served,
        "wrong": served - right,
    }


async def evaluate(pairs: Sequence[LabelledPair], embedder: Embedder, threshold: float) -> dict[str, float]:
    """Precision (served answers that were right) and hit rate (should-hit pairs served)."""
    return _rates(pairs, await pair_scores(pairs, embedder), threshold)


async def calibrate(pairs: Sequence[LabelledPair], embedder: Embedder) -> dict[str, float]:
    """The lowest threshold (to 0.01) with precision 1.0 on `pairs`, with its rates."""
    scores = await pair_scores(pairs, embedder)
    wrong = [s for s, p in zip(scores, pairs, strict=True) if s is not None and not p.hit]
    floor = max(wrong, default=-1.0)
    threshold = max(0.0, min(1.0, math.floor(floor * 100 + 1) / 100))
    return _rates(pairs, scores, threshold)
