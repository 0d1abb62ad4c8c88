"""The lesson calls' shared prefix, long enough for a provider's prompt cache (issue 23): for a
model with `prompt_cache_min_tokens`, every lesson's system message is the same text (course
outline with the sections' summaries, the course's goals and outcomes, the rules, the gates'
rubric) and at least 1,024 tokens; for a model without (a local model's small context) it stays
short."""

from __future__ import annotations

from courseforge.domain import LearningOutcome
from courseforge.ledger.tokens import count_text_tokens
from courseforge.pipeline.lessons import LessonBrief, lesson_request
from courseforge.sim.content import count_tokens
from engine_helpers import example_analysis, hosted_settings

SETTINGS = hosted_settings()
ANALYSIS = example_analysis()
OUTCOMES = [
    LearningOutcome(
        id=f"LO{i}", text=f"Explain {s.key_concepts[0]} with a worked example", bloom_level="understand"
    )
    for i, s in enumerate(ANALYSIS.sections, start=1)
]
OUTLINE = [(s.title, [f"{s.title}: part 1", f"{s.title}: part 2"]) for s in ANALYSIS.sections]


def brief(section: int, lesson: str) -> LessonBrief:
    return LessonBrief(
        analysis=ANALYSIS,
        course_title="Python fundamentals",
        section=ANALYSIS.sections[section],
        section_summary=f"Covers {', '.join(ANALYSIS.sections[section].key_concepts)}.",
        lesson_title=lesson,
        outcomes=[(section + 1, OUTCOMES[section])],
        sibling_titles=[],
        style="Short paragraphs, plain language.",
        outline=OUTLINE,
        sources=None,
        course_outcomes=list(enumerate(OUTCOMES, start=1)),
        section_summaries=[f"Covers {', '.join(s.key_concepts)}." for s in ANALYSIS.sections],
    )


def test_every_lesson_shares_a_prefix_long_enough_to_be_cached() -> None:
    assert SETTINGS.models["gpt-oss-120b"].prompt_cache_min_tokens == 1024
    first = lesson_request(brief(0, "Running Python"), SETTINGS, "mid")
    other = lesson_request(brief(3, "Lists"), SETTINGS, "mid")
    assert first.messages[0] == other.messages[0]  # byte for byte
    assert first.messages[1] != other.messages[1]  # what differs comes after it
    prefix = first.messages[0].content
    assert count_tokens(prefix) >= 1024 and count_text_tokens(prefix) >= 1024
    for needed in ("The course's learning outcomes", "How each lesson is checked", "Exercise types"):
        assert needed in prefix


def test_a_model_without_a_cache_minimum_keeps_the_short_prefix() -> None:
    local = SETTINGS.models["gpt-oss-120b"].model_copy(update={"prompt_cache_min_tokens": 0})
    settings = SETTINGS.model_copy(update={"models": {**SETTINGS.models, "gpt-oss-120b": local}})
    prefix = lesson_request(brief(0, "Running Python"), settings, "mid").messages[0].content
    assert "How each lesson is checked" not in prefix and count_tokens(prefix) < 600
