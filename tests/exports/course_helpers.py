"""A small course with every exercise type (and one exercise no quiz format can key), and one
generated on the loopback simulator."""

from __future__ import annotations

from typing import Any

from courseforge.domain import Course

_CONTENT = (
    "Python runs your program from top to bottom.\n\n## Worked example\n\n```python\nprint('hi')\n```\n\n"
    "A common mistake is to forget the *parentheses*. <script>alert(1)</script> is shown as text.\n\n"
    "In summary, a statement runs once in order."
)


def _lesson(lid: str, title: str, exercises: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": lid, "title": title, "outcome_ids": ["LO1"], "content": _CONTENT, "exercises": exercises}


def _ex(eid: str, kind: str, question: str, answer: str, options: list[str] | None = None) -> dict[str, Any]:
    return {
        "id": eid,
        "type": kind,
        "question": question,
        "options": options,
        "answer": answer,
        "explanation": f"Because {answer} is right: {{braces}} ~tilde =equals #hash: colon.",
        "outcome_ids": ["LO1"],
    }


def sample_course_data() -> dict[str, Any]:
    lessons1 = [
        _lesson(
            "S1-L1",
            "Running code",
            [
                _ex(
                    "E1", "multiple_choice", "Which function prints text?", "print", ["input", "print", "len"]
                ),
                _ex("E2", "true_false", "Python runs statements from top to bottom.", "True"),
            ],
        ),
        _lesson(
            "S1-L2",
            "Names & values",
            [
                _ex("E1", "short_answer", "Which keyword defines a function?", "def"),
                _ex("E2", "coding", "Write code that prints 3 squared.", "print(3 ** 2)"),
                _ex("E3", "open", "Explain why names matter.", "Names make code readable."),
                _ex("E4", "multiple_choice", "Pick the integer.", "seven", ["1.5", "'7'", "7"]),
            ],
        ),
    ]
    lessons2 = [
        _lesson(
            "S2-L1",
            "Loops",
            [_ex("E1", "true_false", "A for loop can iterate over a list.", "false")],
        )
    ]
    plans = [
        {
            "id": "S1",
            "title": "Basics",
            "section_type": "core",
            "summary": "The basics.",
            "lessons": [{"id": x["id"], "title": x["title"], "outcome_ids": ["LO1"]} for x in lessons1],
        },
        {
            "id": "S2",
            "title": "Loops",
            "section_type": "core",
            "summary": "Repeating.",
            "lessons": [{"id": x["id"], "title": x["title"], "outcome_ids": ["LO1"]} for x in lessons2],
        },
    ]
    return {
        "course_id": "sample",
        "status": "approved",
        "metadata": {
            "course_title": "Sample: Python <first> steps",
            "description": "A tiny course.",
            "learning_outcomes": [
                {"id": "LO1", "text": "Explain how Python runs code.", "bloom_level": "understand"}
            ],
            "pedagogical_strategy": "Examples first.",
            "course_structure": plans,
            "domain_taxonomy": ["python"],
            "target_audience": "beginners",
            "prerequisites": [],
            "time_estimate_minutes": 30,
            "style_guidelines": "Plain words.",
        },
        "sections": [
            {"id": "S1", "title": "Basics", "section_type": "core", "lessons": lessons1},
            {"id": "S2", "title": "Loops", "section_type": "core", "lessons": lessons2},
        ],
    }


def sample_course() -> Course:
    return Course.model_validate(sample_course_data())


async def generated_course(name: str = "python-basics") -> Course:
    """A course generated end to end on the loopback simulator (CourseAuthor behind a real
    OpenAI-compatible socket), as `courseforge generate` would write it."""
    from courseforge.config import Settings
    from courseforge.engine import Engine
    from courseforge.testing import CourseAuthor, LoopbackServer
    from engine_helpers import author_reply, example_analysis, loopback_config

    async with LoopbackServer(author_reply(CourseAuthor())) as server:
        engine = Engine(Settings.model_validate(loopback_config(server.base_url)), env={})
        try:
            result = await engine.generate(example_analysis(name))
        finally:
            await engine.aclose()
    assert result.course is not None, result.report.failure_reason
    return result.course
