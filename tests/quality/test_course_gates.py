"""One gate shape (each result carries its gate's advice) and the one list of course gates."""

from __future__ import annotations

from typing import Any

import pytest

from courseforge.domain.course import LearningOutcome
from courseforge.domain.drafts import ExerciseDraft, LessonDraft
from courseforge.quality import GateContext, LengthGate, feedback_text
from courseforge.quality.course_gates import REPAIRED, CourseFacts, course_gates, run_course_gates
from courseforge.quality.grounding import KnownSourcesGate
from courseforge.quality.lesson_gates import ExerciseOutcomesGate
from engine_helpers import hosted_settings


def _draft(outcomes: list[int], citations: list[str] | None = None) -> LessonDraft:
    exercises = [
        ExerciseDraft.model_construct(
            type="short_answer", question="Why?", options=None, answer="x", explanation="y", outcome=n
        )
        for n in outcomes
    ]
    return LessonDraft.model_construct(content="text", exercises=exercises, citations=citations or [])


def test_a_result_carries_its_gates_advice_into_the_feedback() -> None:
    short = LengthGate(100, 200).check(_draft([]), GateContext())
    assert not short.passed and short.advice == LengthGate.advice != ""
    assert feedback_text([short]).endswith(LengthGate.advice)


@pytest.mark.parametrize(
    ("named", "teaches", "passed", "reason"),
    [
        ([1, 2], [1, 2], True, ""),
        ([1, 3], [1, 2], False, "exercises name outcome(s) [3]"),
        ([1], [1, 2], False, "no exercise assesses outcome(s) [2]"),
    ],
)
def test_exercise_outcomes_gate(named: list[int], teaches: list[int], passed: bool, reason: str) -> None:
    result = ExerciseOutcomesGate().check(_draft(named), GateContext(values={"outcome_numbers": teaches}))
    assert result.passed is passed and result.gate == "exercise_outcomes"
    assert result.advice == "Match each exercise to an outcome of this lesson."
    assert all(reason in r for r in result.reasons[:1]) if reason else not result.reasons


def test_known_sources_gate_refuses_a_made_up_citation() -> None:
    sources: dict[str, Any] = {"src-a": "text"}
    assert KnownSourcesGate().check(_draft([], ["src-a"]), GateContext(values={"sources": sources})).passed
    made_up = KnownSourcesGate().check(_draft([], ["src-z"]), GateContext(values={"sources": sources}))
    assert not made_up.passed and made_up.gate == "citations" and "src-z" in made_up.reasons[0]


def _facts(**overrides: Any) -> CourseFacts:
    outcomes = [
        LearningOutcome(id=f"LO{n}", text=f"Write a program that uses feature {n}.", bloom_level="apply")
        for n in (1, 2, 3)
    ]
    fields: dict[str, Any] = {
        "outcomes": outcomes,
        "lessons": 10,
        "min_lessons": 10,
        "empty_sections": [],
        "taught": {"LO1", "LO2", "LO3"},
        "assessed": {"LO1", "LO2", "LO3"},
    }
    return CourseFacts(**{**fields, **overrides})


def test_the_course_gate_list_is_one_list_both_paths_run() -> None:
    settings = hosted_settings()
    assert [g.name for g in course_gates(settings)] == [
        "outcomes",
        "outcome_coverage",
        "completeness",
        "section_concepts",
    ]
    assert {g.name for g in course_gates(settings)} >= REPAIRED
    assert all(r.passed for r in run_course_gates(_facts(), settings))
    short = {r.gate: r for r in run_course_gates(_facts(lessons=8, empty_sections=["Loops"]), settings)}
    assert not short["completeness"].passed
    assert short["completeness"].reasons == [
        "8 usable lessons, minimum is 10",
        "section 'Loops' has no lessons",
    ]
    untaught = {r.gate: r for r in run_course_gates(_facts(taught={"LO1"}), settings)}
    assert not untaught["outcome_coverage"].passed and untaught["outcome_coverage"].score == pytest.approx(
        1 / 3, abs=1e-4
    )
