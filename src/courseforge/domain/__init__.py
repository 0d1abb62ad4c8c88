"""Pure data: the input analysis, the course, the report and model drafts. Imports nothing of ours."""

from .analysis import AnalysisResult, Difficulty, SectionSpec, SourceMaterial
from .course import (
    BloomLevel,
    Citation,
    Course,
    CourseStatus,
    Exercise,
    LearningOutcome,
    Lesson,
    LessonPlan,
    Metadata,
    ReviewFlag,
    Section,
    SectionPlan,
)
from .plan import CoursePlan, PlanLesson, PlanOutcome, PlanSection
from .report import BreakerReport, CallOutcome, CallRecord, Decision, GateScore, LessonGates, Report, Totals

__all__ = [
    "AnalysisResult",
    "BloomLevel",
    "BreakerReport",
    "CallOutcome",
    "CallRecord",
    "Citation",
    "Course",
    "CoursePlan",
    "CourseStatus",
    "Decision",
    "Difficulty",
    "Exercise",
    "GateScore",
    "LearningOutcome",
    "Lesson",
    "LessonGates",
    "LessonPlan",
    "Metadata",
    "PlanLesson",
    "PlanOutcome",
    "PlanSection",
    "Report",
    "ReviewFlag",
    "Section",
    "SectionPlan",
    "SectionSpec",
    "SourceMaterial",
    "Totals",
]
