"""Grounding: are a lesson's factual claims supported by the input's source_material?

A claim is a declarative sentence of the lesson (headings, code, questions, exercises and
instructions to the learner are not claims). Each claim is compared with every sentence window
of the sources by embedding cosine, helped by a lexical check (the share of the claim's content
words found in the best passage): clearly supported, clearly unsupported, or uncertain. The
pipeline asks the judge about the uncertain ones and passes its answers in; `courseforge check`
has no judge and leaves them uncertain. Coverage = supported / all claims (pass: >= 80 %).
"""

from __future__ import annotations

import functools
import itertools
import re
import weakref
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

from ..providers.base import Embedder
from .base import Gate, GateContext, GateResult
from .safety import sentences

__all__ = [
    "CitationCoverageGate",
    "ClaimSupport",
    "GroundingGate",
    "KnownSourcesGate",
    "content_words",
    "factual_claims",
    "ground_claims",
    "source_windows",
]

Status = Literal["supported", "uncertain", "unsupported"]

_CODE = re.compile(r"```.*?```", re.S)
_MARK = re.compile(r"[*_`#>]+")
_NUMBERED = re.compile(r"^\d+\.\s+")
_WORD = re.compile(r"[a-z0-9]+")
#: Sentences that speak to the learner rather than state a fact.
_INSTRUCTION = re.compile(
    r"^(?:practi[cs]e|try|check|remember|note|let's|let us|now|next|first|finally|in this lesson|"
    r"this lesson|we will|you will|you'll|imagine|think|consider|exercise|answer|write|read|"
    r"discuss|compare your|work with|act out|review|summary)\b",
    re.I,
)
_STOP = frozenset(
    [
        "a",
        "an",
        "the",
        "of",
        "to",
        "in",
        "on",
        "at",
        "by",
        "for",
        "with",
        "and",
        "or",
        "but",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "as",
        "from",
        "into",
        "than",
        "then",
        "so",
        "such",
        "which",
        "who",
        "whom",
        "what",
        "when",
        "where",
        "how",
        "can",
        "could",
        "may",
        "might",
        "will",
        "would",
        "should",
        "do",
        "does",
        "did",
        "has",
        "have",
        "had",
        "not",
        "no",
        "also",
        "very",
        "more",
        "most",
    ]
)
_MIN_WORDS = 6


@dataclass(frozen=True, slots=True)
class ClaimSupport:
    claim: str
    status: Status
    cosine: float
    lexical: float
    source_id: str = ""
    #: "embedding" or "judge" (who decided the status).
    decided_by: str = "embedding"


def factual_claims(content: str) -> list[str]:
    """The lesson's declarative sentences of at least six words."""
    text = _CODE.sub(" ", content)
    claims = []
    for sentence in sentences(text):
        line = _MARK.sub("", sentence).strip(" -•\t")
        line = _NUMBERED.sub("", line)
        if len(line.split()) < _MIN_WORDS or line.endswith("?") or line.endswith(":"):
            continue
        if _INSTRUCTION.match(line):
            continue
        claims.append(" ".join(line.split()))
    return list(dict.fromkeys(claims))  # a repeated sentence is one claim


def source_windows(sources: Mapping[str, str]) -> list[tuple[str, str]]:
    """(source id, text) for every sentence and every pair of adjacent sentences of the sources."""
    return list(_windows(tuple(sources.items()))[0])


#: The embedded windows of recent sources, per embedder object: every lesson of a course is
#: grounded in the same sources. Kept with the embedder it came from (a course's own, in the
#: pipeline), so it lives and dies with it, and whether a window is embedded again depends on
#: that embedder's history only (a Temporal workflow replays it identically).
_UNIT_VECTORS: weakref.WeakKeyDictionary[Embedder, dict[tuple[tuple[str, str], ...], Any]] = (
    weakref.WeakKeyDictionary()
)
_UNIT_VECTORS_KEPT = 16


@functools.lru_cache(maxsize=64)
def _windows(
    sources: tuple[tuple[str, str], ...],
) -> tuple[tuple[tuple[str, str], ...], dict[str, tuple[int, ...]]]:
    """The windows of `sources`, and for each content word the windows it occurs in (to count a
    claim's words per window without intersecting its words with every window). Memoised: every
    lesson of a course is grounded in the same sources (a pure function of them)."""
    units: list[tuple[str, str]] = []
    for sid, text in sources:
        parts = sentences(text)
        units += [(sid, p) for p in parts]
        units += [(sid, f"{a} {b}") for a, b in itertools.pairwise(parts)]
    postings: dict[str, list[int]] = {}
    for i, (_, text) in enumerate(units):
        for word in content_words(text):
            postings.setdefault(word, []).append(i)
    return tuple(units), {w: tuple(ix) for w, ix in postings.items()}


def content_words(text: str) -> set[str]:
    """The words of `text` that carry meaning: casefolded, no stop words, longer than two letters."""
    return {w for w in _WORD.findall(text.casefold()) if w not in _STOP and len(w) > 2}


def _lexical(claim: str, passage: str) -> float:
    words = content_words(claim)
    return len(words & content_words(passage)) / len(words) if words else 0.0


async def ground_claims(
    claims: Sequence[str],
    sources: Mapping[str, str],
    embedder: Embedder,
    *,
    supported: float,
    unsupported: float,
    lexical_support: float = 0.7,
) -> list[ClaimSupport]:
    """Each claim's best supporting passage and status. One batched embedding call."""
    if not claims:
        return []
    key = tuple(sources.items())
    units, postings = _windows(key)
    if not units:
        return [ClaimSupport(c, "unsupported", 0.0, 0.0) for c in claims]
    memo = _UNIT_VECTORS.setdefault(embedder, {})
    unit_matrix = memo.get(key)
    if unit_matrix is None:
        vectors = await embedder.embed([*claims, *(u[1] for u in units)])
        claim_vecs, unit_matrix = vectors[: len(claims)], np.asarray(vectors[len(claims) :], dtype=float)
        memo[key] = unit_matrix
        while len(memo) > _UNIT_VECTORS_KEPT:
            memo.pop(next(iter(memo)))
    else:
        claim_vecs = await embedder.embed(list(claims))
    out = []
    for claim, scores in zip(
        claims, (np.asarray(claim_vecs, dtype=float) @ unit_matrix.T).tolist(), strict=True
    ):
        best = max(range(len(units)), key=scores.__getitem__)
        words = content_words(claim)  # as _lexical(claim, passage), best passage
        hits = Counter(i for w in words for i in postings.get(w, ()))
        lex = max(hits.values(), default=0) / len(words) if words else 0.0
        cos = scores[best]
        status: Status
        if cos >= supported or (cos >= unsupported and lex >= lexical_support):
            status = "supported"
        elif cos < unsupported and lex < lexical_support:
            status = "unsupported"
        else:
            status = "uncertain"
        out.append(ClaimSupport(claim, status, round(cos, 4), round(lex, 3), units[best][0]))
    return out


def apply_judgement(claims: Sequence[ClaimSupport], judged: Mapping[int, bool]) -> list[ClaimSupport]:
    """The claims with the judge's answers (index into `claims` -> supported?) applied."""
    return [
        replace(c, status="supported" if judged[i] else "unsupported", decided_by="judge")
        if i in judged
        else c
        for i, c in enumerate(claims)
    ]


def _short(text: str, limit: int = 90) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class GroundingGate(Gate[Any]):
    """Share of supported claims >= `min_coverage`. Reads `context.values["grounding"]` (a list
    of ClaimSupport). Every claim not shown to be supported is listed in the reasons (the report
    carries them). Score: the coverage; no claims at all passes with score 1."""

    name = "grounding"
    advice = "State only what the sources support."
    max_listed = 12

    def __init__(self, min_coverage: float = 0.8) -> None:
        self.min_coverage = min_coverage

    def check(self, artifact: Any, context: GateContext) -> GateResult:
        claims: Sequence[ClaimSupport] | None = context.values.get("grounding")
        if claims is None:
            raise ValueError("GroundingGate needs context.values['grounding'] (see ground_claims)")
        if not claims:
            return self.result(True, 1.0, (), "pass")
        good = sum(c.status == "supported" for c in claims)
        coverage = good / len(claims)
        if coverage >= self.min_coverage:
            return self.result(True, round(coverage, 4), (), "pass", threshold=self.min_coverage)
        bad = [c for c in claims if c.status != "supported"]
        reasons = [
            f"only {good} of {len(claims)} factual claims are supported by the sources "
            f"({coverage:.0%} < {self.min_coverage:.0%}); keep to the sources and cite them"
        ]
        reasons += [f"{c.status}: {_short(c.claim)!r}" for c in bad[: self.max_listed]]
        return self.result(False, round(coverage, 4), reasons, "fail", threshold=self.min_coverage)


class CitationCoverageGate(Gate[Any]):
    """Citation coverage, apart from support: the share of the lesson's factual claims
    that are supported by a source the lesson cites (its `citations`) >= `min_coverage`. A
    supported claim whose source the lesson does not cite counts against it. Reads
    `context.values["grounding"]` and `["citations"]`; no claims passes with score 1."""

    name = "citation_coverage"
    max_listed = 6

    def __init__(self, min_coverage: float = 0.8) -> None:
        self.min_coverage = min_coverage

    def check(self, artifact: Any, context: GateContext) -> GateResult:
        claims: Sequence[ClaimSupport] = context.values.get("grounding") or []
        cited = set(context.values.get("citations") or [])
        if not claims:
            return self.result(True, 1.0, (), "pass", threshold=self.min_coverage)
        covered = [c for c in claims if c.status == "supported" and c.source_id in cited]
        coverage = round(len(covered) / len(claims), 4)
        if coverage >= self.min_coverage:
            return self.result(True, coverage, (), "pass", threshold=self.min_coverage)
        uncited = [c for c in claims if c.status == "supported" and c.source_id not in cited]
        reasons = [
            f"only {len(covered)} of {len(claims)} factual claims are backed by a cited source "
            f"({coverage:.0%} < {self.min_coverage:.0%}); cite the sources you use"
        ]
        reasons += [
            f"supported by uncited {c.source_id}: {_short(c.claim)!r}" for c in uncited[: self.max_listed]
        ]
        return self.result(False, coverage, reasons, "fail", threshold=self.min_coverage)


class KnownSourcesGate(Gate[Any]):
    """A lesson cites only sources it was given: `context.values["sources"]` (source id ->
    text); a lesson citing nothing passes."""

    name = "citations"

    def check(self, artifact: Any, context: GateContext) -> GateResult:
        sources = context.values.get("sources") or {}
        unknown = [c for c in artifact.citations if c not in sources]
        if unknown:
            return self.result(False, None, [f"cites unknown source id(s) {unknown}"], "fail")
        return self.result(True, None, (), "pass")
