"""Lesson prompts are laid out for provider prompt caching: what every lesson of a course
shares is one byte-identical system message; what differs comes after it."""

from __future__ import annotations

from courseforge.domain import LearningOutcome
from courseforge.pipeline.prompts import lesson_messages
from engine_helpers import example_analysis

OUTLINE = [("Variables", ["Names", "Types"]), ("Loops", ["For loops", "While loops"])]


def messages(
    section: int, title: str, outcome: int, *, outline: bool = True, feedback: str = ""
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
