"""The Stage 4 `analysis_result` this stage consumes (schema_version 1)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field, StrictBool, StrictInt, StringConstraints, field_validator, model_validator

from ._base import Money, Strict

__all__ = ["AnalysisResult", "Difficulty", "SectionSpec", "SourceMaterial"]

Difficulty = Literal["beginner", "intermediate", "advanced"]
CourseId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]


def _text(max_length: int) -> StringConstraints:
    """Non-empty stripped text of at most `max_length` characters: every field is bounded, so a
    1.9 MB topic is refused at the door, naming the field, not after money was spent on it."""
    return StringConstraints(strip_whitespace=True, min_length=1, max_length=max_length)


Short = Annotated[str, _text(200)]
Line = Annotated[str, _text(500)]
Paragraph = Annotated[str, _text(4_000)]
#: The smallest per-course cap accepted: below a cent no course gets past its metadata.
MIN_BUDGET_USD = Decimal("0.01")


class SourceMaterial(Strict):
    """A passage the course may cite; enables grounding and citation checks."""

    id: Annotated[str, _text(128)]
    title: Annotated[str, _text(300)]
    text: Annotated[str, _text(100_000)]


class SectionSpec(Strict):
    title: Short
    key_concepts: list[Short] = Field(min_length=1, max_length=30)
    lesson_count: StrictInt = Field(default=2, ge=1, le=10)
    #: Free text (concept, practice, warmup, vocabulary, reading, grammar, discussion, ...);
    #: the config maps types to a routing strategy.
    section_type: Annotated[str, _text(64)] = "concept"
    #: 1 (trivial) .. 10 (hard); estimated from the concepts when absent.
    complexity: StrictInt | None = Field(default=None, ge=1, le=10)
    critical: StrictBool = False
    guidance: Paragraph | None = None


class AnalysisResult(Strict):
    schema_version: Literal[1] = 1
    course_id: CourseId | None = None
    topic: Annotated[str, _text(300)]
    target_audience: Annotated[str, _text(1_000)]
    language: Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")] = "en"
    difficulty: Difficulty = "beginner"
    goals: list[Line] = Field(default_factory=list, max_length=30)
    min_lessons: StrictInt = Field(default=10, ge=1, le=500)
    sections: list[SectionSpec] = Field(min_length=1, max_length=50)
    source_material: list[SourceMaterial] = Field(default_factory=list, max_length=200)
    #: Overrides the config's per-course cap. Bounded: a cap no course can reach is a typo, and
    #: astronomically large numbers cannot be priced or serialised (found by schemathesis); below
    #: `MIN_BUDGET_USD` (1e-12 was accepted, then failed at run time) nothing can be generated.
    budget_usd: Money | None = Field(default=None, ge=MIN_BUDGET_USD, le=100_000)
    style_guidelines: Paragraph | None = None

    @field_validator("sections")
    @classmethod
    def _unique_titles(cls, sections: list[SectionSpec]) -> list[SectionSpec]:
        seen: set[str] = set()
        for s in sections:
            key = s.title.casefold()
            if key in seen:
                raise ValueError(f"duplicate section title {s.title!r}")
            seen.add(key)
        return sections

    @model_validator(mode="after")
    def _unique_source_ids(self) -> AnalysisResult:
        ids = [m.id for m in self.source_material]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"source_material ids must be unique, repeated: {', '.join(dupes)}")
        return self

    @property
    def planned_lessons(self) -> int:
        return sum(s.lesson_count for s in self.sections)
