"""What we ask models to return. Every string and list is bounded so a weak model cannot loop
and a grammar-constrained local model has explicit limits.

These are parsed from model text with `model_validate_json`; unknown keys are ignored here
(models add them) but every required field must be present and within bounds.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from .course import BloomLevel, ExerciseType

__all__ = [
    "ExerciseDraft",
    "GapLessonDraft",
    "GapsDraft",
    "LessonDraft",
    "LessonPlanDraft",
    "MetadataCoreDraft",
    "MetadataExtrasDraft",
    "OutcomeDraft",
    "SectionPlanDraft",
    "json_schema_of",
]


class _Draft(BaseModel):
    model_config = ConfigDict(extra="ignore")


class OutcomeDraft(_Draft):
    text: str = Field(min_length=10, max_length=240)
    bloom_level: BloomLevel


class LessonPlanDraft(_Draft):
    title: str = Field(min_length=3, max_length=120)
    #: 1-based numbers of the learning outcomes this lesson teaches.
    outcomes: list[int] = Field(min_length=1, max_length=4)


class SectionPlanDraft(_Draft):
    summary: str = Field(min_length=10, max_length=300)
    lessons: list[LessonPlanDraft] = Field(min_length=1, max_length=10)


#: At most this many learning outcomes per course (the seeds' 3-12).
MAX_OUTCOMES = 12


class MetadataCoreDraft(_Draft):
    """Critical fields: they decide downstream quality, so they go to the premium tier.
    The course structure (one plan per input section, in order) comes in the same call: it
    needs the outcomes, and one call keeps the critical path short."""

    course_title: str = Field(min_length=5, max_length=120)
    description: str = Field(min_length=40, max_length=800)
    learning_outcomes: list[OutcomeDraft] = Field(min_length=3, max_length=MAX_OUTCOMES)
    pedagogical_strategy: str = Field(min_length=40, max_length=900)
    domain_taxonomy: list[str] = Field(min_length=2, max_length=12)
    sections: list[SectionPlanDraft] = Field(min_length=1, max_length=50)


class MetadataExtrasDraft(_Draft):
    """Non-critical fields: tried on a cheaper tier first."""

    target_audience: str = Field(min_length=10, max_length=400)
    prerequisites: list[str] = Field(min_length=0, max_length=8)
    time_estimate_minutes: int = Field(ge=10, le=10000)
    style_guidelines: str = Field(min_length=10, max_length=600)


class ExerciseDraft(_Draft):
    type: ExerciseType
    question: str = Field(min_length=8, max_length=300)
    options: list[Annotated[str, Field(min_length=1, max_length=160)]] | None = Field(
        default=None, max_length=6
    )
    answer: str = Field(min_length=1, max_length=200)
    explanation: str = Field(min_length=8, max_length=300)
    #: Number of the learning outcome this exercise assesses (one the lesson teaches).
    outcome: int = Field(ge=1, le=50)


class LessonDraft(_Draft):
    content: str = Field(min_length=200, max_length=4000)
    exercises: list[ExerciseDraft] = Field(min_length=1, max_length=4)
    #: Ids of source_material passages the lesson relies on (only when sources were given).
    citations: list[str] = Field(default_factory=list, max_length=8)


class GapLessonDraft(_Draft):
    """One lesson phase 5 adds to close a gap (too few lessons, an outcome nobody teaches)."""

    #: 1-based number of the section it belongs to.
    section: int = Field(ge=1, le=50)
    title: str = Field(min_length=3, max_length=120)
    #: 1-based numbers of the learning outcomes it teaches.
    outcomes: list[int] = Field(min_length=1, max_length=4)


class GapsDraft(_Draft):
    lessons: list[GapLessonDraft] = Field(min_length=1, max_length=20)


def json_schema_of(model: type[BaseModel]) -> dict[str, Any]:
    """A self-contained JSON Schema (no $ref) that strict json_schema providers accept."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return inline(defs[node["$ref"].split("/")[-1]])
            # Drop schema metadata ("title", "default"), never a property that has that name.
            out = {k: inline(v) for k, v in node.items() if k not in ("title", "default", "properties")}
            if "properties" in node:
                out["properties"] = {name: inline(sub) for name, sub in node["properties"].items()}
            if out.get("type") == "object":
                out["additionalProperties"] = False
                out["required"] = list(out.get("properties", {}))
            return out
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    result: dict[str, Any] = inline(schema)
    return result
