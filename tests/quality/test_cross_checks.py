"""Cross-artifact consistency: each problem names its lesson, its exercise and the reason."""

from __future__ import annotations

from decimal import Decimal

from courseforge.domain import Course
from courseforge.ledger import Ledger
from courseforge.pipeline import PipelineContext, run_pipeline
from courseforge.providers.embeddings import HashingEmbedder
from courseforge.quality.cross_checks import cross_artifact_problems
from courseforge.testing import CourseAuthor, ScriptedModel
from engine_helpers import course_calls, example_analysis, hosted_settings


async def _course() -> Course:
    settings = hosted_settings()
    models = {m: ScriptedModel(CourseAuthor(), model_id=m) for m in settings.models}
    ctx = PipelineContext(settings, course_calls(settings, models, Ledger(Decimal(5))), Decimal(5))
    result = await run_pipeline(example_analysis(), "x", ctx)
    assert result.course is not None
    return result.course


async def _problems(course: Course):  # type: ignore[no-untyped-def]
    return await cross_artifact_problems(course, HashingEmbedder(), supported=0.45, unsupported=0.2)


async def test_a_generated_course_is_consistent() -> None:
    course = await _course()
    assert await _problems(course) == []
    assert course.status == "approved"


async def test_an_exercise_not_answerable_from_its_lesson_is_named() -> None:
    course = await _course()
    lesson = course.sections[1].lessons[0]
    exercise = lesson.exercises[0]
    exercise.question = "Which volcano erupted over Pompeii in 79 AD?"
    exercise.answer = "Mount Vesuvius near Naples"
    exercise.type = "short_answer"
    exercise.options = None
    [problem] = await _problems(course)
    assert (problem.lesson, problem.exercise, problem.kind) == (lesson.id, exercise.id, "answerable")
    assert f"not answerable from lesson {lesson.id}" in problem.reason


async def test_an_outcome_assessed_by_no_exercise_is_named() -> None:
    course = await _course()
    target = course.metadata.learning_outcomes[0].id
    for lesson in course.lessons():
        for e in lesson.exercises:
            e.outcome_ids = [o for o in e.outcome_ids if o != target] or [
                o for o in lesson.outcome_ids if o != target
            ][:1]
    problems = [p for p in await _problems(course) if p.kind == "assessed"]
    assert [p.reason.split(" is taught")[0] for p in problems] == [f"outcome {target}"]
    assert problems[0].lesson  # the lesson that teaches it


async def test_lessons_out_of_the_plans_order_and_exercises_ahead_of_teaching() -> None:
    course = await _course()
    section = course.sections[0]
    first, second = section.lessons[0], section.lessons[1]
    section.lessons = [second, first]
    order = [p for p in await _problems(course) if p.kind == "order"]
    assert any(p.lesson == first.id and "the plan puts it before" in p.reason for p in order)
    # An exercise of an early lesson assessing an outcome first taught in the last lesson.
    course = await _course()
    lessons = course.lessons()
    last = course.sections[-1].lessons[0]
    before = lessons[: lessons.index(last)]
    late = next(o for o in last.outcome_ids if all(o not in x.outcome_ids for x in before))
    early = lessons[0]
    early.exercises[0].outcome_ids = [late]
    order = [p for p in await _problems(course) if p.kind == "order"]
    assert [(p.lesson, p.exercise) for p in order] == [(early.id, early.exercises[0].id)]
    assert f"first taught later in {last.id}" in order[0].reason
