"""Every gate over the labelled set (tests/quality/data/labelled.jsonl, 145 items written for
this purpose: on-topic, off-topic, related-but-wrong, duplicated, ungrounded, PII-bearing, toxic
and clean look-alikes). Gates are classifiers, so each is held to precision and recall >= 0.9
at finding what it must reject. Rule-based gates run in the default suite; the embedding gates
use the real all-MiniLM-L6-v2 and are marked embedding_model. Run with -s to see the figures
(they are quoted in docs/quality.md)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from courseforge.config.loader import load_config
from courseforge.config.settings import GateSettings
from courseforge.providers.embeddings import CachedEmbedder, make_embedder
from courseforge.quality import SimilarityGate, lesson_similarity
from courseforge.quality.base import GateContext
from courseforge.quality.grounding import ground_claims
from courseforge.quality.redundancy import find_duplicates, text_vectors
from courseforge.quality.safety import SafetyGate

DATA = Path(__file__).parent / "data" / "labelled.jsonl"
ROWS: list[dict[str, Any]] = [
    json.loads(line) for line in DATA.read_text("utf-8").splitlines() if line.strip()
]


@dataclass(frozen=True)
class Confusion:
    """Counts for "the gate rejects" (the positive class: what a gate exists to catch)."""

    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    def __str__(self) -> str:
        return f"precision {self.precision:.3f} recall {self.recall:.3f} (tp {self.tp} fp {self.fp} fn {self.fn} tn {self.tn})"


def confusion(pairs: Iterable[tuple[bool, bool]]) -> Confusion:
    """pairs of (gate rejected, should be rejected)."""
    items = list(pairs)
    return Confusion(
        tp=sum(1 for r, s in items if r and s),
        fp=sum(1 for r, s in items if r and not s),
        fn=sum(1 for r, s in items if not r and s),
        tn=sum(1 for r, s in items if not r and not s),
    )


def rows(gate: str, kinds: Callable[[dict[str, Any]], bool] = lambda r: True) -> list[dict[str, Any]]:
    return [r for r in ROWS if r["gate"] == gate and kinds(r)]


def test_the_labelled_set_is_big_and_varied_enough() -> None:
    kinds = {r["kind"] for r in ROWS}
    assert len(ROWS) >= 120
    for wanted in ("on_topic", "off_topic", "related_but_wrong", "duplicated", "ungrounded", "pii", "toxic"):
        assert wanted in kinds


# -- rule-based: safety ---------------------------------------------------------------------------
def test_safety_gate_pii() -> None:
    gate = SafetyGate(classifier=False, profanity=False)
    data = [r for r in rows("safety") if r["kind"] in ("pii", "clean")]
    result = confusion((not gate.check(r["text"], GateContext()).passed, r["label"] == "flag") for r in data)
    print(f"\nsafety/pii   {result}")
    assert result.precision >= 0.9 and result.recall >= 0.9


def test_safety_gate_toxicity() -> None:
    pytest.importorskip("profanity_check")
    gate = SafetyGate(pii=())
    data = [r for r in rows("safety") if r["kind"] in ("toxic", "clean_tricky", "clean")]
    result = confusion((not gate.check(r["text"], GateContext()).passed, r["label"] == "flag") for r in data)
    print(f"\nsafety/toxic {result}")
    assert result.precision >= 0.9 and result.recall >= 0.9


def test_safety_gate_whole() -> None:
    gate = SafetyGate()
    result = confusion(
        (not gate.check(r["text"], GateContext()).passed, r["label"] == "flag") for r in rows("safety")
    )
    print(f"\nsafety/all   {result}")
    assert result.precision >= 0.9 and result.recall >= 0.9


# -- lexical half of redundancy (no model) -------------------------------------------------------
def test_redundancy_lexical_catches_verbatim_copies() -> None:
    """The lexical measure alone: near-verbatim copies; paraphrases are the embedding's job."""
    from courseforge.quality.redundancy import (
        exercise_lexical,
        question_ratio,
        shingle_containment,
        shingle_overlap,
    )

    copies = [r for r in rows("redundancy") if r.get("variant") != "paraphrase"]
    result = confusion((shingle_overlap(r["a"], r["b"]) >= 60, r["label"] == "dup") for r in copies)
    print(f"\nlexical lessons {result}")
    assert result.precision >= 0.9 and result.recall >= 0.9
    # Containment (what the gate reads) is never below Jaccard: the copies stay caught.
    result = confusion((shingle_containment(r["a"], r["b"]) >= 90, r["label"] == "dup") for r in copies)
    assert result.precision >= 0.9 and result.recall >= 0.9
    questions = rows("redundancy_exercise")
    result = confusion((question_ratio(r["a"], r["b"]) >= 80, r["label"] == "dup") for r in questions)
    print(f"lexical questions {result}")
    assert result.precision >= 0.9 and result.recall >= 0.9
    # What the gate reads (issue 25: compared on what differs) keeps every verdict.
    result = confusion((exercise_lexical(r["a"], r["b"]) >= 80, r["label"] == "dup") for r in questions)
    print(f"lexical questions, what differs {result}")
    assert result.precision >= 0.9 and result.recall >= 0.9


# -- embedding gates with the real MiniLM (embedding_model) -------------------------------------------------
@pytest.fixture(scope="module")
def minilm() -> CachedEmbedder:
    return make_embedder("all-MiniLM-L6-v2")


@pytest.fixture(scope="module")
def gates() -> GateSettings:
    return load_config("hosted", env={}).settings.gates


@pytest.mark.embedding_model
def test_similarity_gate(minilm: CachedEmbedder, gates: GateSettings) -> None:
    gate = SimilarityGate(gates.similarity["all-MiniLM-L6-v2"])

    async def run() -> list[tuple[bool, bool, float, str]]:
        out = []
        for r in rows("similarity"):
            values = await lesson_similarity(r["content"], {"LO1": r["outcome"]}, minilm)
            verdict = gate.check(None, GateContext(values=values))
            out.append((not verdict.passed, r["label"] == "fail", float(values["similarity"]), r["kind"]))
        return out

    measured = asyncio.run(run())
    for kind in ("on_topic", "related_but_wrong", "off_topic"):
        scores = [s for _, _, s, k in measured if k == kind]
        print(f"\n{kind:18} min {min(scores):.2f} max {max(scores):.2f}", end="")
    result = confusion((a, b) for a, b, _, _ in measured)
    print(f"\nsimilarity   {result}")
    # Since issue 24's round 3 the absolute mark is set between real and off-topic lessons; a
    # related-but-wrong lesson is the rival margin's to catch, which needs a course's other
    # outcomes (measured on the outside set, docs/quality.md) — these rows have none.
    absolute = confusion((a, b) for a, b, _, k in measured if k != "related_but_wrong")
    print(f"similarity, on-topic vs off-topic   {absolute}")
    assert absolute.precision >= 0.9 and absolute.recall >= 0.9
    assert result.precision >= 0.9


@pytest.mark.embedding_model
def test_redundancy_gate(minilm: CachedEmbedder, gates: GateSettings) -> None:
    rs = gates.redundancy

    async def run() -> list[tuple[bool, bool]]:
        out = []
        for r in rows("redundancy"):
            vecs = await text_vectors([r["a"], r["b"]], minilm)
            dups = find_duplicates(
                [("A", r["a"]), ("B", r["b"])],
                vecs,
                cosine_at=rs.lesson_cosine["all-MiniLM-L6-v2"],
                lexical_at=rs.lesson_lexical,
                distinct_facts=rs.lesson_distinct_facts,
            )
            out.append((bool(dups), r["label"] == "dup"))
        for r in rows("redundancy_exercise"):
            vecs = await minilm.embed([r["a"], r["b"]])
            dups = find_duplicates(
                [("A", r["a"]), ("B", r["b"])],
                vecs,
                cosine_at=rs.exercise_cosine["all-MiniLM-L6-v2"],
                lexical_at=rs.exercise_lexical,
                kind="exercise",
            )
            out.append((bool(dups), r["label"] == "dup"))
        return out

    result = confusion(asyncio.run(run()))
    print(f"\nredundancy   {result}")
    assert result.precision >= 0.9 and result.recall >= 0.9


@pytest.mark.embedding_model
def test_grounding_gate(minilm: CachedEmbedder, gates: GateSettings) -> None:
    gs = gates.grounding
    data = rows("grounding")

    async def run() -> list[Any]:
        return await ground_claims(
            [r["claim"] for r in data],
            data[0]["sources"],
            minilm,
            supported=gs.supported["all-MiniLM-L6-v2"],
            unsupported=gs.unsupported["all-MiniLM-L6-v2"],
        )

    support = asyncio.run(run())
    for r, s in zip(data, support, strict=True):
        print(
            f"\n{s.status:11} cos {s.cosine:.2f} lex {s.lexical:.2f} [{r['label']}] {r['claim'][:60]}", end=""
        )
    # Uncertain claims go to the judge; what the embedding decides alone must be right, and it
    # must not call a supported claim unsupported (or an unsupported one supported).
    decided = [
        (s.status == "unsupported", r["label"] == "unsupported")
        for r, s in zip(data, support, strict=True)
        if s.status != "uncertain"
    ]
    caught = confusion(
        (s.status != "supported", r["label"] == "unsupported") for r, s in zip(data, support, strict=True)
    )
    print(f"\ngrounding (not supported = flagged) {caught}; decided without judge {len(decided)}/{len(data)}")
    assert caught.precision >= 0.9 and caught.recall >= 0.9
