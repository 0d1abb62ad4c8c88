"""The course plan an author reviews between phase 2 (metadata) and phase 3 (lessons): what
`generate --review-plan` stops at, `courseforge plan show|edit|approve` and `/v1/jobs/{id}/plan`
show and change. Fields marked read-only are figures; an edit's values there are ignored."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from .course import BloomLevel

__all__ = ["CoursePlan", "PlanLesson", "PlanOutcome", "PlanSection"]


class _Plan(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PlanOutcome(_Plan):
    #: "LO1", "LO2", ... An added outcome may leave it empty (numbered in order on apply).
    id: str = ""
    text: str = Field(min_length=10, max_length=240)
    bloom_level: BloomLevel


class PlanLesson(_Plan):
    #: "S1-L2"; renumbered in order on apply (a lesson's place is its id).
    id: str = ""
    title: str = Field(min_length=3, max_length=120)
    #: The outcome ids it teaches (1 to 4).
    outcomes: list[str] = Field(min_length=1, max_length=4)
    #: Read-only: the tier pre-routing starts it on, and a first attempt's estimated cost there.
    start_tier: str = ""
    estimated_cost_usd: float = 0.0


class PlanSection(_Plan):
    #: "S1", ... one per input section, in the input's order (sections are the input's).
    id: str
    #: Read-only: the input section's title.
    title: str = ""
    summary: str = Field(default="", max_length=300)
    lessons: list[PlanLesson] = Field(min_length=1, max_length=10)


class CoursePlan(_Plan):
    course_title: str = Field(min_length=5, max_length=120)
    description: str = Field(min_length=40, max_length=800)
    outcomes: list[PlanOutcome] = Field(min_length=1, max_length=12)
    sections: list[PlanSection] = Field(min_length=1, max_length=50)
    #: Read-only: the lessons' estimates summed, what phase 2 spent, the course's budget.
    projected_lessons_usd: float = 0.0
    spent_usd: float = 0.0
    budget_usd: float = 0.0
    #: Read-only: why the last edit or the resumed run's re-gating refused this plan ([] = none).
    problems: list[str] = Field(default_factory=list)
