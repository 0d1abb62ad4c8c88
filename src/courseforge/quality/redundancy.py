"""Redundancy across a course: near-duplicate lessons and exercises, and self-consistency.

Two measures, because each misses what the other sees: embedding cosine catches a paraphrase
(same ideas, new words), a lexical measure catches a copy with a few words changed that a
long-text embedding may blur. Lessons use the Jaccard of their word 3-shingles (what MinHash
estimates; exact is cheap for a course's few dozen lessons); exercise questions, short, use
rapidfuzz's token-sort ratio, or the ratio of the swapped words alone when one question puts
another subject in the other's place (`exercise_lexical`). Self-consistency reuses the cosine: samples
of one lesson that disagree mean the model is unsure.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from ..config.quality_settings import RedundancySettings
from ..providers.base import Embedder
from ..providers.embeddings import cosine, cosine_matrix
from .base import Gate, GateContext, GateResult

__all__ = [
    "ConsistencyGate",
    "CourseLesson",
    "Duplicate",
    "RedundancyGate",
    "course_duplicates",
    "exercise_lexical",
    "find_duplicates",
    "min_pairwise_cosine",
    "question_ratio",
    "shared_facts",
    "shingle_containment",
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


def shingle_containment(a: str, b: str) -> float:
    """Share (0-100) of the shorter text's word 3-shingles found in the other: a lesson copied
    with half of it cut is still all inside the other (Jaccard would halve)."""
    return _containment(_shingles(a), _shingles(b))


def _containment(sa: set[tuple[str, ...]], sb: set[tuple[str, ...]]) -> float:
    smaller = min(len(sa), len(sb))
    return 100.0 * len(sa & sb) / smaller if smaller else 100.0


#: A token with a digit in it (a year, a version, a quantity, a date's day).
_FACT = re.compile(r"[\w.]*\d[\w.]*")
#: Each lesson needs at least this many such tokens for them to tell two lessons apart.
_MIN_FACTS = 3


def _facts(text: str) -> set[str]:
    return {t.strip(".").casefold() for t in _FACT.findall(text)} - {""}


def shared_facts(a: str, b: str) -> float | None:
    """Jaccard (0-1) of the two texts' number-bearing tokens, or None when either has fewer
    than `_MIN_FACTS`. A paraphrase keeps its facts (the hand-made paraphrases share 94-100 %
    of them); two lessons of one template about different things do not (the Debian 9 and 10
    release notes, MiniLM cosine 0.92: 8 %)."""
    fa, fb = _facts(a), _facts(b)
    if len(fa) < _MIN_FACTS or len(fb) < _MIN_FACTS:
        return None
    return len(fa & fb) / len(fa | fb)


def _jaccard(sa: set[tuple[str, ...]], sb: set[tuple[str, ...]]) -> float:
    union = sa | sb
    return 100.0 * len(sa & sb) / len(union) if union else 100.0


def question_ratio(a: str, b: str) -> float:
    """rapidfuzz token-sort ratio (0-100) of two short texts, case and punctuation ignored."""
    from rapidfuzz import fuzz, utils

    return float(fuzz.token_sort_ratio(a, b, processor=utils.default_process))


#: Words a rewording swaps or adds without changing what a question asks ("is returned by",
#: "into"/"to", "what will be"). Not "for", "while", "if": in a question about code they are
#: what it asks about.
_GRAMMAR = frozenset(
    [
        "a",
        "an",
        "the",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "do",
        "does",
        "did",
        "done",
        "by",
        "to",
        "into",
        "in",
        "of",
        "on",
        "at",
        "from",
        "with",
        "which",
        "what",
        "that",
        "this",
        "these",
        "those",
        "it",
        "its",
        "there",
        "will",
        "would",
        "can",
        "could",
        "should",
        "shall",
        "may",
    ]
)


def _stem(word: str) -> str:
    """A crude stem, enough to match "release"/"released", "return"/"returned", "plants"."""
    for suffix in ("ing", "ed", "es", "s", "e"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def _swapped_subject(a: str, b: str) -> tuple[list[str], list[str]]:
    """The words where one question puts another subject in the other's place: spans at the
    same place (difflib's `replace`) that each hold a content word the other question lacks.
    Empty when the two differ only by word order, grammar words, endings or added words."""
    from difflib import SequenceMatcher

    wa, wb = _WORD.findall(a.casefold()), _WORD.findall(b.casefold())
    sa, sb = [_stem(w) for w in wa], [_stem(w) for w in wb]
    in_a, in_b = set(sa), set(sb)
    left: list[str] = []
    right: list[str] = []
    for op, i1, i2, j1, j2 in SequenceMatcher(None, sa, sb, autojunk=False).get_opcodes():
        if op != "replace":
            continue
        only_a = [wa[i] for i in range(i1, i2) if sa[i] not in in_b and wa[i] not in _GRAMMAR]
        only_b = [wb[j] for j in range(j1, j2) if sb[j] not in in_a and wb[j] not in _GRAMMAR]
        if only_a and only_b:
            left += only_a
            right += only_b
    return left, right


_CODE_SPAN = re.compile(r"`([^`\n]+)`")


def _code_only(a: str, b: str) -> list[str]:
    """Words of `a`'s code spans that `b` does not have at all: in a question about code, the
    code it names is its subject ("the `range()` function" / "a function", session 4's demo)."""
    in_b = {_stem(w) for w in _WORD.findall(b.casefold())}
    return [
        w for span in _CODE_SPAN.findall(a) for w in _WORD.findall(span.casefold()) if _stem(w) not in in_b
    ]


def exercise_lexical(a: str, b: str) -> float:
    """Lexical similarity (0-100) of two exercise questions, measured on what differs: the
    token-sort ratio of the whole questions, unless one puts another subject where the other
    has its own ("What is the purpose of the `for` loop…" / "…of the `if` statement…", 80.9 as
    whole questions), or names code the other lacks ("the `range()` function" / "a function",
    87.2); then the ratio of those words alone ("for loop" / "if statement", "range" / "").
    A reworded copy (word order, "is returned by", "into"/"to", an added "in Spanish") keeps
    its whole-question score.

    Remembered per pair of questions: phase 4 compares every lesson's questions with every
    other lesson's, again after each rewrite, and a service does it for every course; the
    comparison (difflib over stems) was a tenth of a busy service's event loop. The memo is a
    dict of strings and floats, which the garbage collector does not track (an `lru_cache`'s
    entries are objects every full collection walks)."""
    key = f"{a}\x00{b}"
    found = _LEXICAL_MEMO.get(key)
    if found is None:
        if len(_LEXICAL_MEMO) >= _MEMO_MAX:
            _LEXICAL_MEMO.clear()
        found = _LEXICAL_MEMO[key] = _exercise_lexical(a, b)
    return found


#: Pairs of questions remembered by `exercise_lexical` (then forgotten all at once).
_MEMO_MAX = 16_384
_LEXICAL_MEMO: dict[str, float] = {}


def _exercise_lexical(a: str, b: str) -> float:
    whole = question_ratio(a, b)
    left, right = _swapped_subject(a, b)
    left += _code_only(a, b)
    right += _code_only(b, a)
    if not left and not right:
        return whole
    return min(whole, question_ratio(" ".join(left), " ".join(right)))


def find_duplicates(
    items: Sequence[tuple[str, str]],
    vectors: Sequence[Sequence[float]],
    *,
    cosine_at: float,
    lexical_at: float,
    kind: str = "lesson",
    distinct_facts: float = 0.0,
    containment_at: float = 90.0,
    later: Collection[int] | None = None,
) -> list[Duplicate]:
    """For each item, the first earlier item it duplicates (cosine or lexical at/above bound).
    Items are (id, text) in course order; the later one of a pair is the one to regenerate.
    Lessons' lexical measure is the Jaccard of their word 3-shingles, or their containment
    (`shingle_containment`) when that reaches `containment_at`: a copy with half of it cut.
    Below that, containment is not used: lessons of one template (the simulator's, a model's
    boilerplate) share 60-88 % of the shorter one's shingles without repeating it.
    With `distinct_facts`, a lesson pair matched by cosine alone is not a duplicate when they
    share less than that share of their number-bearing tokens (`shared_facts`).
    With `later`, only the items at those indexes are looked at as the later one of a pair
    (what a caller asking about a few new items needs; the others' pairs are not compared)."""
    if kind == "lesson":  # each text's shingles made once
        shingles = [_shingles(text) for _, text in items]

        def lexical(i: int, j: int) -> float:
            contained = _containment(shingles[i], shingles[j])
            return contained if contained >= containment_at else _jaccard(shingles[i], shingles[j])
    else:

        def lexical(i: int, j: int) -> float:
            return exercise_lexical(items[i][1], items[j][1])

    found = []
    cosines = cosine_matrix(vectors, vectors)
    for j in range(1, len(items)):
        if later is not None and j not in later:
            continue
        for i in range(j):
            cos = cosines[i][j]
            lex = lexical(i, j)
            if lex < lexical_at and cos >= cosine_at and kind == "lesson" and distinct_facts > 0:
                facts = shared_facts(items[i][1], items[j][1])
                if facts is not None and facts < distinct_facts:
                    continue  # one template, different facts: not a repeat
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
    advice = "Teach something the other lesson does not."

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
        return self.result(not dups, score, reasons, "pass" if not dups else "fail")


class ConsistencyGate(Gate[Any]):
    """Self-consistency: the lowest pairwise cosine of a lesson's samples must reach the bound,
    else the model is unsure and the task escalates (severe). Reads `values["consistency"]`."""

    name = "consistency"
    advice = "Be precise and stick to well-established facts."

    def __init__(self, min_cosine: float) -> None:
        self.min_cosine = min_cosine

    def check(self, artifact: Any, context: GateContext) -> GateResult:
        value = context.values.get("consistency")
        if value is None:
            raise ValueError("ConsistencyGate needs context.values['consistency']")
        score = float(value)
        if score >= self.min_cosine:
            return self.result(True, score, (), "pass", threshold=self.min_cosine)
        reason = (
            f"samples of this lesson disagree (lowest pairwise cosine {score:.2f} < {self.min_cosine:.2f}): "
            "the model is unsure; state the facts plainly and follow the brief"
        )
        return self.result(False, score, [reason], "severe", threshold=self.min_cosine)


_CHUNK_WORDS = 120


async def text_vectors(texts: Sequence[str], embedder: Any) -> list[list[float]]:
    """One unit vector per text, averaged over 120-word pieces (MiniLM reads ≈ 190 words and
    drops the rest, so a long lesson embedded whole would be compared on its opening only).
    One batched `embed` call for every piece of every text."""
    import numpy as np

    from .gates import _chunks  # the similarity gate's pieces: same texts, so cache hits

    pieces: list[str] = []
    owners: list[int] = []
    for i, text in enumerate(texts):
        for piece in _chunks(text, _CHUNK_WORDS):
            pieces.append(piece)
            owners.append(i)
    vectors = await embedder.embed(pieces)
    if not vectors:
        return [[] for _ in texts]
    weighted = (
        np.asarray(vectors, dtype=float)
        * np.array([max(1, len(p.split())) for p in pieces], dtype=float)[:, None]
    )
    sums = np.zeros((len(texts), weighted.shape[1]))
    np.add.at(sums, np.array(owners), weighted)
    norms = np.sqrt((sums * sums).sum(axis=1))
    unit: list[list[float]] = np.where(
        norms[:, None] > 0, sums / np.where(norms > 0, norms, 1.0)[:, None], sums
    ).tolist()
    return unit


@dataclass(frozen=True, slots=True)
class CourseLesson:
    """A lesson as the course-wide check sees it; its exercises are `<id>-E1`, `<id>-E2`, …"""

    id: str
    content: str
    questions: Sequence[str] = ()


def owner_of(item_id: str) -> str:
    """The lesson a duplicate's id belongs to (an exercise id `S1-L2-E1` -> `S1-L2`)."""
    head, sep, tail = item_id.rpartition("-E")
    return head if sep and tail.isdigit() else item_id


async def course_duplicates(
    lessons: Sequence[CourseLesson], embedder: Embedder, settings: RedundancySettings
) -> list[Duplicate]:
    """Later lessons (and lessons with a later exercise) that repeat an earlier one, in course
    order, at the embedder's `gates.redundancy` thresholds. Exercises of one lesson repeating
    each other are that lesson's business (the exercise gate); across lessons they count."""
    name = embedder.name
    vectors = await text_vectors([x.content for x in lessons], embedder)
    found = find_duplicates(
        [(x.id, x.content) for x in lessons],
        vectors,
        cosine_at=settings.lesson_cosine.get(name, 0.92),
        lexical_at=settings.lesson_lexical,
        distinct_facts=settings.lesson_distinct_facts,
        containment_at=settings.lesson_containment,
    )
    exercises = [(f"{x.id}-E{k + 1}", q) for x in lessons for k, q in enumerate(x.questions)]
    if len(exercises) > 1:
        qvecs = await embedder.embed([q for _, q in exercises])
        found += [
            d
            for d in find_duplicates(
                exercises,
                qvecs,
                cosine_at=settings.exercise_cosine.get(name, 0.95),
                lexical_at=settings.exercise_lexical,
                kind="exercise",
            )
            if owner_of(d.later) != owner_of(d.earlier)
        ]
    return found
