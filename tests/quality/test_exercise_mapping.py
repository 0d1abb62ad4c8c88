"""An exercise tagged with an outcome counts as assessing it (issue 24): a course exercise may be
tagged with several outcomes, and each of them is assessed."""

from __future__ import annotations

from courseforge.domain.drafts import ExerciseDraft, LessonDraft
from courseforge.quality.base import GateContext, GateResult
from courseforge.quality.lesson_gates import ExerciseOutcomesGate


def _draft(*outcomes: int) -> LessonDraft:
    exercises = [
        ExerciseDraft.model_construct(
            type="short_answer", question="q", answer="a", explanation="", outcome=o
        )
        for o in outcomes
    ]
    return LessonDraft.model_construct(content="x", exercises=exercises, citations=[])


def exercise_coverage(
    draft: LessonDraft, numbers: list[int], assessed: list[list[int]] | None = None
) -> GateResult:
    values: dict[str, object] = {"outcome_numbers": numbers}
    if assessed is not None:
        values["assessed"] = assessed
    return ExerciseOutcomesGate().check(draft, GateContext(values=values))


def test_one_exercise_tagged_with_both_outcomes_assesses_both() -> None:
    draft = _draft(1)
    assert not exercise_coverage(draft, [1, 2]).passed  # the draft's single label: outcome 2 missing
    result = exercise_coverage(draft, [1, 2], assessed=[[1, 2]])
    assert result.passed and result.score == 1.0


def test_a_tag_outside_the_lesson_is_still_stray() -> None:
    result = exercise_coverage(_draft(1), [1], assessed=[[1, 3]])
    assert not result.passed and "[3]" in result.reasons[0]
