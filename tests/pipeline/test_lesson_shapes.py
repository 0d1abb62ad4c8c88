"""Seed 002's shapes of a lesson request (issue 26, item 13): exercises written apart from the
lesson on a configurable tier (`routing.exercises_tier`), and a section's lessons asked in one
request (`routing.group_lessons`), each lesson parsed, checked and regenerated on its own."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from courseforge.config import Settings
from courseforge.config.settings import RoutingSettings
from courseforge.domain.tasks import TaskId
from courseforge.pipeline.prompts import parse_brief
from courseforge.providers import ChatRequest
from courseforge.testing import CourseAuthor
from engine_helpers import example_analysis, hosted_settings, make_engine, scripted_models


def _settings(**routing: Any) -> Settings:
    settings = hosted_settings()
    return settings.model_copy(update={"routing": settings.routing.model_copy(update=routing)})


class _Recording:
    """CourseAuthor's answers (an unusable one for the tasks in `fail`), each request kept."""

    def __init__(self, author: CourseAuthor | None = None, fail: set[str] | None = None) -> None:
        self.author = author or CourseAuthor()
        self.fail = fail or set()
        self.requests: list[tuple[str, ChatRequest]] = []

    def __call__(self, request: ChatRequest) -> str:
        task = str(parse_brief(request.messages).get("task"))
        self.requests.append((task, request))
        if task in self.fail:
            return "I cannot write that."  # no JSON: the answer is unusable
        return self.author(request)


def test_exercises_apart_needs_a_known_tier() -> None:
    routing = hosted_settings().routing.model_dump()
    with pytest.raises(ValueError, match="nowhere"):
        RoutingSettings.model_validate({**routing, "exercises_tier": "nowhere"})
    assert RoutingSettings.model_validate({**routing, "exercises_tier": "cheap"}).exercises_tier == "cheap"


async def test_exercises_are_written_apart_on_their_tier() -> None:
    settings = _settings(exercises_tier="cheap")
    scripts: dict[str, _Recording] = {}
    models = scripted_models(settings, lambda m: scripts.setdefault(m, _Recording()))
    result = await make_engine(settings, models).generate(example_analysis())
    assert result.course is not None
    lessons = result.course.lessons()
    assert lessons and all(x.exercises for x in lessons)
    # Every lesson request asks for the lesson only; each exercises call is on the cheap tier.
    lesson_requests = [r for s in scripts.values() for t, r in s.requests if t == "lesson"]
    assert lesson_requests
    for request in lesson_requests:
        assert request.json_schema is not None
        assert "exercises" not in request.json_schema["properties"]
        assert parse_brief(request.messages)["exercises_apart"] is True
    calls = [c for c in result.report.calls if c.phase == "lessons"]
    exercise_calls = [c for c in calls if TaskId.parse(c.task).kind == "exercises"]
    lesson_calls = [c for c in calls if TaskId.parse(c.task).kind == "lesson"]
    assert len(exercise_calls) == len(lesson_calls)  # one per attempt
    assert {c.tier for c in exercise_calls} == {"cheap"}
    assert {c.model for c in exercise_calls} == {settings.routing.tiers["cheap"]}
    # The exercises are the ones the exercises call wrote, for the lesson's own outcomes.
    asked = [r for t, r in scripts[settings.routing.tiers["cheap"]].requests if t == "exercises"]
    assert asked and all("lesson" in parse_brief(r.messages) for r in asked)


async def test_inline_is_the_default_shape() -> None:
    settings = hosted_settings()
    assert settings.routing.exercises_tier is None and not settings.routing.group_lessons
    result = await make_engine(settings, scripted_models(settings)).generate(example_analysis())
    kinds = {TaskId.parse(c.task).kind for c in result.report.calls}
    assert "exercises" not in kinds and "lesson_group" not in kinds


async def test_a_failed_exercises_call_fails_the_attempt_and_the_lesson_goes_on() -> None:
    settings = _settings(exercises_tier="cheap")
    models = scripted_models(settings, lambda m: _Recording(fail={"exercises"}))  # every tier
    result = await make_engine(settings, models).generate(example_analysis())
    calls = [c for c in result.report.calls if c.phase == "lessons"]
    failed = [c for c in calls if TaskId.parse(c.task).kind == "exercises"]
    assert failed and all(c.outcome in ("error", "rejected") for c in failed)
    # The lesson answer whose exercises failed is not accepted as it is.
    rejected = [c for c in calls if TaskId.parse(c.task).kind == "lesson" and c.outcome == "rejected"]
    assert rejected and all("exercises call failed" in c.reason for c in rejected)
    assert result.course is None or all(x.exercises for x in result.course.lessons())


async def test_an_unusable_exercises_answer_is_asked_again_a_tier_up_keeping_the_lesson() -> None:
    settings = _settings(exercises_tier="cheap")
    cheap, mid = settings.routing.tiers["cheap"], settings.routing.tiers["mid"]
    models = scripted_models(settings, lambda m: _Recording(fail={"exercises"} if m == cheap else set()))
    analysis = example_analysis()
    result = await make_engine(settings, models).generate(analysis)
    # Warm-up sections are supplementary: their lessons may not climb above their tier.
    supplementary = {
        f"S{i + 1}-" for i, s in enumerate(analysis.sections) if s.section_type in ("warmup", "pronunciation")
    }
    assert supplementary, "the example has a supplementary section"
    calls = [c for c in result.report.calls if c.phase == "lessons" and c.attempt == 1]
    by_lesson: dict[str, list[Any]] = {}
    for c in calls:
        task = TaskId.parse(c.task)
        if task.kind in ("lesson", "exercises") and not task.sample and not task.round:
            by_lesson.setdefault(task.lesson, []).append(c)
    retried = kept = 0
    for lesson, lesson_calls in by_lesson.items():
        exercises = [c for c in lesson_calls if TaskId.parse(c.task).kind == "exercises"]
        answers = [c for c in lesson_calls if TaskId.parse(c.task).kind == "lesson"]
        assert exercises[0].model == cheap and exercises[0].outcome == "rejected"
        if lesson.startswith(tuple(supplementary)) and answers[0].tier == "cheap":
            # No retry above a non-escalating lesson's tier: the attempt fails as before.
            assert len(exercises) == 1
            assert answers[0].outcome == "rejected" and "exercises call failed" in answers[0].reason
            kept += 1
            continue
        # One more exercises call, on mid, on the same lesson answer: the lesson is not asked again.
        assert [c.model for c in exercises] == [cheap, mid] and exercises[1].outcome == "ok"
        assert len(answers) == 1 and "exercises call failed" not in (answers[0].reason or "")
        retried += 1
    assert retried and kept
    assert result.course is not None
    gates = {x.lesson_id: x for x in result.report.lessons}
    assert any(gates[x].attempts == 1 and gates[x].status == "accepted" for x in by_lesson if x in gates)


async def test_an_unusable_exercises_answer_is_not_asked_again_above_the_budget_ceiling() -> None:
    settings = _settings(exercises_tier="cheap")
    # Past the step-down point from the first paid call on: nothing may start above cheap.
    budget = settings.budget.model_copy(update={"step_down_at": 1e-6, "step_down_tier": "cheap"})
    settings = settings.model_copy(update={"budget": budget})
    cheap = settings.routing.tiers["cheap"]
    models = scripted_models(settings, lambda m: _Recording(fail={"exercises"} if m == cheap else set()))
    result = await make_engine(settings, models).generate(example_analysis())
    exercises = [c for c in result.report.calls if TaskId.parse(c.task).kind == "exercises"]
    assert exercises and {c.tier for c in exercises} == {"cheap"}
    assert all(c.outcome != "ok" for c in exercises)


async def test_a_sections_lessons_share_one_request_and_a_failed_one_is_regenerated_alone() -> None:
    settings = _settings(group_lessons=True)
    drifted: Counter[str] = Counter()

    def off_topic(brief: dict[str, Any]) -> bool:
        # The first lesson of section 1 drifts in the grouped answer only.
        title = str(brief.get("lesson_title", ""))
        if "part 1" in title and "(" in title and drifted["done"] == 0 and brief.get("section") == first:
            drifted["done"] += 1
            return True
        return False

    analysis = example_analysis()
    first = analysis.sections[0].title
    scripts: dict[str, _Recording] = {}
    models = scripted_models(
        settings, lambda m: scripts.setdefault(m, _Recording(CourseAuthor(off_topic=off_topic)))
    )
    result = await make_engine(settings, models).generate(analysis)
    assert result.course is not None
    calls = [c for c in result.report.calls if c.phase == "lessons"]
    groups = [c for c in calls if TaskId.parse(c.task).kind == "lesson_group"]
    assert groups, "sections with two or more lessons on one tier are asked together"
    grouped = {x for d in result.report.decisions if d.action == "group" for x in d.inputs["lessons"]}
    assert grouped
    firsts = {TaskId.parse(c.task).lesson for c in calls if c.task.startswith("lesson:") and c.attempt == 1}
    assert not (firsts & grouped), "a grouped lesson's first attempt is its part of the group answer"
    # Each grouped lesson was checked on its own; the drifted one alone was asked again.
    assert drifted["done"] == 1
    again = [c for c in calls if c.task.startswith("lesson:") and c.attempt == 2]
    assert len({TaskId.parse(c.task).lesson for c in again}) == 1
    lesson = TaskId.parse(again[0].task).lesson
    assert lesson in grouped and lesson.startswith("S1-")
    gates = {x.lesson_id: x for x in result.report.lessons}
    assert gates[lesson].attempts >= 2
    # A grouped lesson accepted on its part of the answer passed at its first attempt.
    assert any(gates[x].attempts == 1 and gates[x].status == "accepted" for x in grouped)
    # The group request holds every member's brief, and asks for as many lessons.
    request = next(r for s in scripts.values() for t, r in s.requests if t == "lesson_group")
    assert request.json_schema is not None
    members = request.json_schema["properties"]["lessons"]["minItems"]
    assert members == len(parse_brief(request.messages)["lessons"]) >= 2


async def test_a_failed_group_request_leaves_its_lessons_to_their_own_calls() -> None:
    settings = _settings(group_lessons=True)
    models = scripted_models(settings, lambda m: _Recording(fail={"lesson_group"}))
    result = await make_engine(settings, models).generate(example_analysis())
    assert result.course is not None and result.course.lessons()
    groups = [d for d in result.report.decisions if d.action == "group"]
    assert groups and all("each asked alone" in d.reason for d in groups)
    calls = [c for c in result.report.calls if c.phase == "lessons"]
    firsts = {TaskId.parse(c.task).lesson for c in calls if c.task.startswith("lesson:") and c.attempt == 1}
    assert {x for d in groups for x in d.inputs["lessons"]} <= firsts
