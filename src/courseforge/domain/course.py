"""The generated course: metadata, sections, lessons, exercises and review flags."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ._base import Open

__all__ = [
    "BloomLevel",
    "Citation",
    "Course",
    "CourseStatus",
    "Exercise",
    "LearningOutcome",
    "Lesson",
    "LessonPlan",
    "Metadata",
    "ReviewFlag",
    "Section",
    "SectionPlan",
]

BloomLevel = Literal["remember", "understand", "apply", "analyze", "evaluate", "create"]
CourseStatus = Literal["approved", "needs_review"]
ExerciseType = Literal["multiple_choice", "true_false", "short_answer", "coding", "open"]


class LearningOutcome(Open):
    id: str
    text: str
    bloom_level: BloomLevel


class LessonPlan(Open):
    id: str
    title: str
    outcome_ids: list[str]


class SectionPlan(Open):
    id: str
    title: str
    section_type: str
    summary: str = ""
    lessons: list[LessonPlan]


class Metadata(Open):
    course_title: str
    description: str
    learning_outcomes: list[LearningOutcome]
    pedagogical_strategy: str
    course_structure: list[SectionPlan]
    domain_taxonomy: list[str]
    target_audience: str
    prerequisites: list[str]
    time_estimate_minutes: int
    style_guidelines: str


class Exercise(Open):
    id: str
    type: ExerciseType
    question: str
    options: list[str] | None = None
    answer: str
    explanation: str
    outcome_ids: list[str]


class Citation(Open):
    source_id: str
    quote: str = ""


class Lesson(Open):
    id: str
    title: str
    outcome_ids: list[str]
    content: str
    exercises: list[Exercise]
    citations: list[Citation] | None = None


class Section(Open):
    id: str
    title: str
    section_type: str
    lessons: list[Lesson] = Field(default_factory=list)


class ReviewFlag(Open):
    """Something a person should look at before the course ships."""

    target: str  # "course", "metadata", "section:S2", "lesson:S2-L1"
    reason: str
    gate: str = ""
    score: float | None = None
    #: How close the deciding gates came to the other verdict: 1 a coin flip, 0 clear-cut
    #: (see docs/report.md); the review queue is ranked by it.
    uncertainty: float | None = None


class Course(Open):
    course_id: str
    status: CourseStatus
    metadata: Metadata
    sections: list[Section]
    review: list[ReviewFlag] = Field(default_factory=list)

    def lessons(self) -> list[Lesson]:
        return [lesson for section in self.sections for lesson in section.lessons]
