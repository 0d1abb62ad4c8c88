"""Quality gates: pure verdicts on lessons and outcomes, and the helper that feeds them embeddings."""

from .base import Gate, GateContext, GateResult
from .gates import (
    ExercisesGate,
    LengthGate,
    OutcomesGate,
    SimilarityGate,
    evaluate_lesson,
    feedback_text,
    lesson_similarity,
)

__all__ = [
    "ExercisesGate",
    "Gate",
    "GateContext",
    "GateResult",
    "LengthGate",
    "OutcomesGate",
    "SimilarityGate",
    "evaluate_lesson",
    "feedback_text",
    "lesson_similarity",
]
