"""Course-level coverage: every outcome taught by a lesson and assessed by an exercise, and
every section's key concepts taught by its lessons.

The bound is 90 %: a course whose outcomes are mostly served is flagged, not failed, when one
outcome in ten slips; below the bound it needs review.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from .base import Gate, GateContext, GateResult
from .grounding import content_words

__all__ = [
    "CompletenessGate",
    "OutcomeCoverageGate",
    "SectionConceptsGate",
    "SectionLessons",
    "completeness_problems",
    "concept_covered",
    "outcome_problems",
]


def completeness_problems(*, lessons: int, min_lessons: int, empty_sections: Collection[str]) -> list[str]:
    """The structural rules of phase 5: enough lessons, and no section without one."""
    problems = []
    if lessons < min_lessons:
        problems.append(f"{lessons} usable lessons, minimum is {min_lessons}")
    problems += [f"section {title!r} has no lessons" for title in empty_sections]
    return problems


def outcome_problems(ids: Collection[str], taught: Collection[str], assessed: Collection[str]) -> list[str]:
    """Outcomes no lesson teaches, and outcomes no exercise assesses."""
    problems = []
    if missing := [i for i in ids if i not in taught]:
        problems.append(f"outcomes taught by no lesson: {', '.join(missing)}")
    if missing := [i for i in ids if i not in assessed]:
        problems.append(f"outcomes assessed by no exercise: {', '.join(missing)}")
    return problems


class OutcomeCoverageGate(Gate[Any]):
    """Share of outcomes both taught and assessed >= `min_share`. Reads `values["taught"]` and
    `values["assessed"]` (outcome ids) and the outcome ids from `context.outcomes`."""

    name = "outcome_coverage"

    def __init__(self, min_share: float = 0.9) -> None:
        self.min_share = min_share

    def check(self, artifact: Any, context: GateContext) -> GateResult:
        ids = list(context.outcomes)
        taught: Collection[str] = context.values.get("taught", ())
        assessed: Collection[str] = context.values.get("assessed", ())
        if not ids:
            return self.result(False, 0.0, ["the course has no learning outcomes"], "fail")
        served = [i for i in ids if i in taught and i in assessed]
        share = len(served) / len(ids)
        reasons = outcome_problems(ids, taught, assessed)
        passed = share >= self.min_share
        if not passed:
            reasons.insert(0, f"outcome coverage {share:.0%} < {self.min_share:.0%}")
        return GateResult(
            self.name,
            passed,
            round(share, 4),
            reasons,
            "pass" if passed else "fail",
            threshold=self.min_share,
        )


class CompletenessGate(Gate[Any]):
    """The structural rules of phase 5 (`completeness_problems`): reads `values["lessons"]`,
    `values["min_lessons"]` and `values["empty_sections"]`; its score is the lesson count."""

    name = "completeness"

    def check(self, artifact: Any, context: GateContext) -> GateResult:
        lessons = int(context.values.get("lessons", 0))
        problems = completeness_problems(
            lessons=lessons,
            min_lessons=int(context.values.get("min_lessons", 0)),
            empty_sections=context.values.get("empty_sections", ()),
        )
        return self.result(not problems, float(lessons), problems)


_TOKEN = re.compile(r"\w+")
#: A concept word and a lesson word match on this many leading characters ("parameters" /
#: "parameter", "dictionaries" / "dictionary"): a crude stem that needs no language model.
_STEM = 5


def _fold(text: str) -> str:
    """Casefolded, accents dropped: "Adiós" and "adios", "días" and "dias" read alike."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _stems(text: str) -> set[str]:
    return {w[:_STEM] for w in _TOKEN.findall(text)}


#: Where a compound concept splits into its parts: commas, " and ", " / ", " vs ".
_PARTS = re.compile(r"\s*(?:,|/|\band\b|\bvs\.?)\s*")


def _named(concept: str, text: str, found: set[str]) -> bool:
    """`concept` (folded) named in `text` (folded): verbatim, or at least half its content words
    by their first five letters."""
    if concept in text:
        return True
    words = content_words(concept) or set(_TOKEN.findall(concept))
    if not words:
        return True
    hits = sum(w[:_STEM] in found for w in words)
    return hits * 2 >= len(words)


def concept_covered(concept: str, text: str) -> bool:
    """Whether `text` names `concept`: verbatim, or at least half of the concept's content words
    (stop words dropped; matched on their first five letters). A concept of only short words
    ("ñ, ll and rr") is matched on those words. Case and accents fold ("adiós" / "Adios"). A
    compound concept ("hola and adiós", "buenos días, buenas tardes, buenas noches") is also
    covered when each of its parts is, each read the same way."""
    concept, text = _fold(concept), _fold(text)
    found = _stems(text)
    if _named(concept, text, found):
        return True
    parts = [p for p in _PARTS.split(concept) if p.strip()]
    return len(parts) > 1 and all(_named(p, text, found) for p in parts)


@dataclass(frozen=True, slots=True)
class SectionLessons:
    """One section as the concepts gate sees it: its id, title, key concepts (from the input)
    and its lessons' markdown."""

    id: str
    title: str
    key_concepts: Sequence[str]
    contents: Sequence[str]


class SectionConceptsGate(Gate[Any]):
    """Every section teaches its key concepts: a section whose lessons name fewer than
    `min_share` of its key concepts (none at all, when it was planned from titles that drifted
    off its subject, or its lessons only announce it) fails, naming the concepts no lesson
    covers. Reads the artifact's `sections` (`SectionLessons`); its score is the lowest share.
    Lexical by design: a lesson that teaches a key concept uses its term (docs/quality.md)."""

    name = "section_concepts"
    advice = "teach each of the section's key concepts by name, with an example of each"

    def __init__(self, min_share: float = 0.5) -> None:
        self.min_share = min_share

    def check(self, artifact: Any, context: GateContext) -> GateResult:
        reasons: list[str] = []
        worst = 1.0
        sections: Sequence[SectionLessons] = getattr(artifact, "sections", ())
        for section in sections:
            if not section.key_concepts or not section.contents:
                continue
            text = "\n".join(section.contents)
            missing = [c for c in section.key_concepts if not concept_covered(c, text)]
            share = 1 - len(missing) / len(section.key_concepts)
            worst = min(worst, share)
            if share < self.min_share:
                reasons.append(
                    f"section {section.id} ({section.title!r}): no lesson covers "
                    + ", ".join(repr(c) for c in missing)
                )
        passed = not reasons
        return self.result(
            passed, round(worst, 4), reasons, "pass" if passed else "fail", threshold=self.min_share
        )
