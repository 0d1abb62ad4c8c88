"""The Stage 4 `analysis_result` this stage consumes (schema_version 1)."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import (
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.config import JsonDict

from ._base import Money, Strict, WholeNumber

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
#: A budget written as text: a plain decimal from 0.01 to 100000 (no sign, exponent, spaces or
#: leading zeros), so that the schema says exactly what is accepted.
BUDGET_TEXT = r"^(?:[1-9][0-9]{0,4}(?:\.[0-9]+)?|100000(?:\.0+)?|0?\.(?:0[1-9]|[1-9])[0-9]*)$"


def _budget_text(value: object) -> object:
    if isinstance(value, str) and not re.fullmatch(BUDGET_TEXT, value):
        raise ValueError(
            'a decimal number of dollars from 0.01 to 100000 (a JSON number, or text like "0.45")'
        )
    return value


#: The budget's schema as accepted: a number in range, a plain decimal text in range, or null.
_BUDGET_SCHEMA = {
    "anyOf": [
        {"type": "number", "minimum": float(MIN_BUDGET_USD), "maximum": 100_000},
        {"type": "string", "pattern": BUDGET_TEXT},
        {"type": "null"},
    ],
    "default": None,
}


class SourceMaterial(Strict):
    """A passage the course may cite; enables grounding and citation checks."""

    id: Annotated[str, _text(128)]
    title: Annotated[str, _text(300)]
    text: Annotated[str, _text(100_000)]


class SectionSpec(Strict):
    title: Short
    key_concepts: list[Short] = Field(min_length=1, max_length=30)
    lesson_count: WholeNumber = Field(default=2, ge=1, le=10)
    #: Free text (concept, practice, warmup, vocabulary, reading, grammar, discussion, ...);
    #: the config maps types to a routing strategy.
    section_type: Annotated[str, _text(64)] = "concept"
    #: 1 (trivial) .. 10 (hard); estimated from the concepts when absent.
    complexity: Annotated[
        WholeNumber | None,
        WithJsonSchema({"anyOf": [{"type": "integer", "minimum": 1, "maximum": 10}, {"type": "null"}]}),
    ] = Field(default=None, ge=1, le=10)
    critical: StrictBool = False
    guidance: Paragraph | None = None


#: Lessons a section can hold (the phase 1 capacity rule: `min_lessons` at most 10 per section).
SECTION_CAPACITY = 10


def _capacity_schema(schema: JsonDict) -> None:
    """The capacity rule in the JSON Schema, so the schema refuses what phase 1 refuses: with at
    most k sections, `min_lessons` is at most 10 k (JSON Schema has no arithmetic: one rule per k)."""
    schema["allOf"] = [
        {
            "if": {"properties": {"sections": {"maxItems": k}}},
            "then": {"properties": {"min_lessons": {"maximum": SECTION_CAPACITY * k}}},
        }
        for k in range(1, 50)
    ]


class AnalysisResult(Strict):
    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=_capacity_schema)

    schema_version: Literal[1] = 1
    course_id: CourseId | None = None
    topic: Annotated[str, _text(300)]
    target_audience: Annotated[str, _text(1_000)]
    language: Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")] = "en"
    difficulty: Difficulty = "beginner"
    goals: list[Line] = Field(default_factory=list, max_length=30)
    min_lessons: WholeNumber = Field(default=10, ge=1, le=500)
    sections: list[SectionSpec] = Field(min_length=1, max_length=50)
    source_material: list[SourceMaterial] = Field(default_factory=list, max_length=200)
    #: Overrides the config's per-course cap. Bounded: a cap no course can reach is a typo, and
    #: astronomically large numbers cannot be priced or serialised (found by schemathesis); below
    #: `MIN_BUDGET_USD` (1e-12 was accepted, then failed at run time) nothing can be generated.
    budget_usd: Annotated[Money | None, BeforeValidator(_budget_text), WithJsonSchema(_BUDGET_SCHEMA)] = (
        Field(default=None, ge=MIN_BUDGET_USD, le=100_000)
    )
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
