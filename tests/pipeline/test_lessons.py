"""Rule-based repairs in phase 3's lesson check: exercise outcome labels by meaning."""

from __future__ import annotations

from decimal import Decimal

from courseforge.domain import LearningOutcome
from courseforge.domain.drafts import ExerciseDraft, LessonDraft
from courseforge.pipeline import CourseState, PipelineContext, validate_analysis
from courseforge.pipeline.lesson_checks import relabel_exercises
from courseforge.pipeline.state import LessonSlot
from engine_helpers import EmbedOnly, hosted_settings


def _state() -> CourseState:
    analysis = validate_analysis(
        {
            "topic": "Python basics",
            "target_audience": "beginners",
            "min_lessons": 1,
            "sections": [{"title": "Data", "key_concepts": ["for loops", "dictionaries"], "lesson_count": 1}],
        }
    )
    state = CourseState(analysis=analysis, course_id="c", lesson_counts=[1])
    state.outcomes = [
        LearningOutcome(id="LO1", text="Write a for loop over the items of a list", bloom_level="apply"),
        LearningOutcome(id="LO2", text="Use dictionary keys and dictionary values", bloom_level="apply"),
    ]
    return state


def _lesson(questions: list[str], labels: list[int]) -> LessonDraft:
    return LessonDraft(
        content="x" * 300,
        exercises=[
            ExerciseDraft(
                type="short_answer",
                question=q,
                answer="See the lesson.",
                explanation="Explained in the lesson text.",
                outcome=n,
            )
            for q, n in zip(questions, labels, strict=True)
        ],
    )


async def test_exercises_all_tagged_with_one_outcome_are_relabelled_by_meaning() -> None:
    state, slot = _state(), LessonSlot(id="S1-L1", section_index=0, title="Data", outcome_numbers=[1, 2])
    ctx = PipelineContext(hosted_settings(), EmbedOnly(), Decimal(1))  # type: ignore[arg-type]
    lesson = _lesson(
        [
            "Which dictionary keys and dictionary values does this dictionary hold?",
            "Write a for loop over a list",
        ],
        [1, 1],
    )
    change = await relabel_exercises(state, slot, lesson, ctx)
    assert [e.outcome for e in lesson.exercises] == [2, 1]
    assert change == "exercise outcomes [1, 1] relabelled by meaning to [2, 1]"


async def test_no_relabel_when_no_exercise_is_about_the_missing_outcome() -> None:
    state, slot = _state(), LessonSlot(id="S1-L1", section_index=0, title="Data", outcome_numbers=[1, 2])
    ctx = PipelineContext(hosted_settings(), EmbedOnly(), Decimal(1))  # type: ignore[arg-type]
    lesson = _lesson(["Write a for loop over a list", "What colour is a clear midday sky?"], [1, 1])
    assert await relabel_exercises(state, slot, lesson, ctx) is None
    assert [e.outcome for e in lesson.exercises] == [1, 1]  # the coverage gate will say so


async def test_nothing_to_do_when_every_outcome_is_assessed_or_too_few_exercises() -> None:
    state = _state()
    ctx = PipelineContext(hosted_settings(), EmbedOnly(), Decimal(1))  # type: ignore[arg-type]
    both = LessonSlot(id="S1-L1", section_index=0, title="Data", outcome_numbers=[1, 2])
    covered = _lesson(["Write a for loop over a list", "Use dictionary keys"], [1, 2])
    assert await relabel_exercises(state, both, covered, ctx) is None
    single = _lesson(["Write a for loop over a list"], [1])
    assert await relabel_exercises(state, both, single, ctx) is None
