"""The five phases; each takes the course state and returns it advanced."""

from .run import PHASES, PipelineResult, run_pipeline
from .state import CourseState, LessonSlot, PipelineContext, ProgressEvent
from .validate import parse_analysis, plan_lesson_counts, validate_analysis

__all__ = [
    "PHASES",
    "CourseState",
    "LessonSlot",
    "PipelineContext",
    "PipelineResult",
    "ProgressEvent",
    "parse_analysis",
    "plan_lesson_counts",
    "run_pipeline",
    "validate_analysis",
]
