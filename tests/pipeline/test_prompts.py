"""Lesson prompts are laid out for provider prompt caching: what every lesson of a course
shares is one byte-identical system message; what differs comes after it."""

from __future__ import annotations

import json
from pathlib import Path

from courseforge.config import load_config
from courseforge.domain import AnalysisResult, LearningOutcome
from courseforge.pipeline.lessons import (
    LessonBrief,
    _prose_first,
    exercises_by_type,
    lesson_request,
    lesson_schema,
    lesson_schema_for,
)
from courseforge.pipeline.prompts import lesson_exercises_ask, lesson_messages, worked_example_kind
from courseforge.providers.schemacheck import schema_errors
from engine_helpers import example_analysis

OUTLINE = [("Variables", ["Names", "Types"]), ("Loops", ["For loops", "While loops"])]


def messages(
    section: int,
    title: str,
    outcome: int,
    *,
    outline: bool = True,
    feedback: str = "",
    prose_first: bool = False,
) -> list[str]:
    analysis = example_analysis()
    msgs = lesson_messages(
        analysis=analysis,
        course_title="Python basics",
        section=analysis.sections[section],
        section_summary="A summary.",
        lesson_title=title,
        outcomes=[
            (
                outcome,
                LearningOutcome(id=f"LO{outcome}", text=f"Explain topic {outcome}", bloom_level="understand"),
            )
        ],
        sibling_titles=[],
        words=(150, 400),
        style="Short sentences.",
        outline=OUTLINE if outline else (),
        feedback=feedback,
        exercises=(2, 3),
        prose_first=prose_first,
    )
    return [m.content for m in msgs]


def test_every_lesson_shares_the_system_message_byte_for_byte() -> None:
    a = messages(0, "Names", 1)
    b = messages(1, "While loops", 2, feedback="too short")
    assert a[0] == b[0]
    assert a[1] != b[1]
    # the rules every lesson follows are in the shared prefix, not repeated per lesson
    assert "150 to 400 words" in a[0] and "2 to 3 exercises" in a[0]
    assert "150 to 400 words" not in a[1]
    assert a[1].startswith("Write the lesson 'Names'")


def test_without_an_outline_the_rules_stay_in_the_user_message() -> None:
    plain = messages(0, "Names", 1, outline=False)
    assert "150 to 400 words" in plain[1] and "Outline:" not in plain[0]


def test_a_prose_first_lesson_asks_for_markdown_then_its_exercises_in_a_second_turn() -> None:
    system, user = messages(0, "Names", 1, prose_first=True)
    # the middle of the range, with a size per part
    assert "lesson itself in markdown, about 275 words (never fewer than 150 nor more than 400" in system
    assert "(about 91 words)" in system
    assert "Stop after the summary" in system
    assert "worked example" in system and "never announce" in system
    assert "Do not write exercises" in system and "exercises;" not in system
    assert user.startswith("Write the lesson 'Names'")
    ask = lesson_exercises_ask([1, 3], (3, 3))
    assert ask.startswith("Now write 3 exercises") and "(1, 3)" in ask and "citations" not in ask
    # a question the learner reads without the lesson quotes the code it asks about
    assert "complete on its own" in ask and "quotes it in the question" in ask
    assert "Never write 'the following code'" in ask and "fenced code block" in ask
    assert "citations" in lesson_exercises_ask([1], (3, 3), sourced=True)


def test_a_prose_first_request_bounds_its_parts_and_stops_at_an_exercises_heading() -> None:
    plan = _prose_first([2], (3, 3), [], (250, 500), 1600)
    assert plan.max_prose_tokens == 1000 and "\n## Exercises" in plan.stop
    assert plan.follow_up == lesson_exercises_ask([2], (3, 3))
    # no grammar bounds the markdown: the word range is the length gate's, not the parser's
    free = lesson_schema(250, 500, 3, 3, bound_content=False)["properties"]["content"]
    bound = lesson_schema(250, 500, 3, 3)["properties"]["content"]
    assert (free["minLength"], free["maxLength"]) == (200, 4000)
    assert (bound["minLength"], bound["maxLength"]) == (250 * 7, 500 * 5)


def test_an_offline_lesson_under_its_word_floor_is_asked_for_one_more_worked_example() -> None:
    """Issue 25: the provider asks a short markdown answer for one more part (`ProseFirst.extend`)
    of the course's worked-example kind, instead of the cascade writing the whole lesson again."""
    settings = load_config("offline", env={}).settings
    analysis = example_analysis()
    brief = LessonBrief(
        analysis=analysis,
        course_title="Python basics",
        section=analysis.sections[0],
        section_summary="A summary.",
        lesson_title="Names",
        outcomes=[(1, LearningOutcome(id="LO1", text="Explain names", bloom_level="understand"))],
        sibling_titles=[],
        style="",
        outline=OUTLINE,
        sources=None,
    )
    tier = settings.routing.ladder[0]
    plan = lesson_request(brief, settings, tier).prose_first
    assert plan is not None and plan.min_words == settings.gates.lesson_min_words
    assert "{have}" in plan.extend and "{need}" in plan.extend
    assert worked_example_kind(analysis) in plan.extend and "before its summary" in plan.extend
    assert _prose_first([2], (3, 3), [], (250, 500), 1600).min_words == 0  # no kind: no floor asked


def test_a_grammar_bound_lessons_exercises_take_the_shape_of_their_type() -> None:
    schema = exercises_by_type(lesson_schema_for(lesson_schema(250, 500, 3, 3, bound_content=False), [2], []))

    def lesson(**exercise: object) -> dict[str, object]:
        base = {"question": "Is 3 > 2 in Python?", "explanation": "Three is larger.", "outcome": 2}
        return {"content": "x" * 300, "exercises": [{**base, **exercise}] * 3, "citations": []}

    assert not schema_errors(lesson(type="true_false", options=None, answer="true"), schema)
    # a true_false answered with a sentence (the gate's refusal) cannot be written at all
    assert schema_errors(lesson(type="true_false", options=None, answer="Three is larger than two"), schema)
    assert schema_errors(lesson(type="true_false", options=["True", "False"], answer="true"), schema)
    assert not schema_errors(lesson(type="multiple_choice", options=["1", "2", "3"], answer="2"), schema)
    assert schema_errors(lesson(type="multiple_choice", options=["1", "2"], answer="2"), schema)
    assert not schema_errors(lesson(type="short_answer", options=None, answer="3"), schema)
    # one sentence of explanation
    assert schema_errors(lesson(type="short_answer", options=None, answer="3", explanation="x" * 181), schema)
    # still narrowed to the lesson's outcomes; the untyped schema is left as it was
    assert schema_errors(lesson(type="short_answer", options=None, answer="3", outcome=1), schema)
    assert (
        "anyOf" not in lesson_schema(250, 500, 3, 3, bound_content=False)["properties"]["exercises"]["items"]
    )


def test_a_prose_first_lesson_asks_for_the_worked_example_its_course_can_use() -> None:
    examples = Path(__file__).resolve().parents[2] / "examples"

    def kind(name: str) -> str:
        return worked_example_kind(AnalysisResult.model_validate(json.loads((examples / name).read_text())))

    # a coder model offered "code, a dialogue or a calculation" wrote Python into a Spanish lesson
    assert "dialogue" in kind("spanish-a1.json") and "no code" in kind("spanish-a1.json")
    assert kind("python-basics.json") == "one short code block followed by its output"
    assert "no code" in kind("photosynthesis-sourced.json")
    system, _ = messages(0, "Names", 1, prose_first=True)
    assert f"step by step ({worked_example_kind(example_analysis())})" in system
