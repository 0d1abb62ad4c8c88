"""The Stage 4 `analysis_result` this stage consumes (schema_version 1)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StrictBool, StrictInt, StringConstraints, field_validator, model_validator

from ._base import Money, NonEmptyStr, Strict

__all__ = ["AnalysisResult", "Difficulty", "SectionSpec", "SourceMaterial"]

Difficulty = Literal["beginner", "intermediate", "advanced"]
CourseId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]


class SourceMaterial(Strict):
    """A passage the course may cite; enables grounding and citation checks."""

    id: NonEmptyStr
    title: NonEmptyStr
    text: NonEmptyStr


class SectionSpec(Strict):
    title: NonEmptyStr
    key_concepts: list[NonEmptyStr] = Field(min_length=1, max_length=30)
    lesson_count: StrictInt = Field(default=2, ge=1, le=10)
    #: Free text (concept, practice, warmup, vocabulary, reading, grammar, discussion, ...);
    #: the config maps types to a routing strategy.
    section_type: NonEmptyStr = "concept"
    #: 1 (trivial) .. 10 (hard); estimated from the concepts when absent.
    complexity: StrictInt | None = Field(default=None, ge=1, le=10)
    critical: StrictBool = False
    guidance: NonEmptyStr | None = None


class AnalysisResult(Strict):
    schema_version: Literal[1] = 1
    course_id: CourseId | None = None
    topic: NonEmptyStr
    target_audience: NonEmptyStr
    language: Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")] = "en"
    difficulty: Difficulty = "beginner"
    goals: list[NonEmptyStr] = Field(default_factory=list, max_length=30)
    min_lessons: StrictInt = Field(default=10, ge=1, le=500)
    sections: list[SectionSpec] = Field(min_length=1, max_length=50)
    source_material: list[SourceMaterial] = Field(default_factory=list, max_length=200)
    #: Overrides the config's per-course cap. Bounded: a cap no course can reach is a typo, and
    #: astronomically large numbers cannot be priced or serialised (found by schemathesis).
    budget_usd: Money | None = Field(default=None, gt=0, le=100_000)
    style_guidelines: NonEmptyStr | None = None

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
