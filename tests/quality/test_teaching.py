"""The "teaches, not announces" gate: announcement-only lessons fail, real teaching passes."""

from __future__ import annotations

import pytest

from courseforge.domain.drafts import LessonDraft
from courseforge.quality.base import GateContext
from courseforge.quality.teaching import TeachesGate, announces_next, teaching_profile

# The example, shortened: every sentence is about the lesson, none about branches.
ANNOUNCEMENT = (
    "In this lesson we are going to look at branches. Branches are one of the most important topics "
    "you will meet. We will start with the basic idea and then build on it step by step. Along the way "
    "we will see why it matters. By the end you will be able to use them. So, let's get started!"
)
# A real lesson: a definition, an example and code, and no sentence about the lesson.
TEACHING = (
    "A branch runs one block or another depending on a condition. The `if` statement tests the "
    "condition; for example `if x < 0:` runs its block only for negative numbers.\n\n"
    "```python\nif x < 0:\n    print('negative')\nelse:\n    print('zero or more')\n```\n\n"
    "There can be zero or more `elif` parts, and the `else` part is optional."
)
# History prose: no code, few definitions, and never about the lesson itself.
NARRATIVE = (
    "Debian was meant to be carefully and conscientiously put together. It started as a small, "
    "tightly-knit group of free software hackers, and gradually grew to become a large, well-organized "
    "community of developers and users."
)


def _draft(content: str) -> LessonDraft:
    return LessonDraft.model_construct(content=content, exercises=[], citations=[])


def test_an_announcement_is_mostly_about_itself() -> None:
    t = teaching_profile(ANNOUNCEMENT)
    assert t.share > 0.8 and t.worked == 0


@pytest.mark.parametrize("content", [TEACHING, NARRATIVE])
def test_teaching_passes(content: str) -> None:
    result = TeachesGate().check(_draft(content), GateContext())
    assert result.passed and result.score == 0.0


def test_an_announcement_fails_with_advice() -> None:
    result = TeachesGate().check(_draft(ANNOUNCEMENT), GateContext())
    assert not result.passed
    assert "announces instead of teaching" in result.reasons[0]
    assert result.threshold == 0.4


def test_a_half_announcing_lesson_needs_worked_content() -> None:
    # 2 of 4 sentences announce (0.5 > 0.4): fails even with examples.
    half = "We will look at sets. Let's begin. A set holds unique items, for example {1, 2}. Use `set()`."
    assert not TeachesGate().check(_draft(half), GateContext()).passed
    # 1 of 4 (0.25, above 0.2) with two pieces of worked content passes; without them it fails.
    quarter_worked = "Let's begin with sets. A set holds unique items, for example {1, 2}. Use `set()` for one. Sets are fast."
    quarter_thin = "Let's begin with sets. Sets are handy. They are widely used. People like them."
    assert TeachesGate().check(_draft(quarter_worked), GateContext()).passed
    assert not TeachesGate().check(_draft(quarter_thin), GateContext()).passed


def test_code_blocks_are_not_sentences() -> None:
    t = teaching_profile("```python\n# we will print\nprint('we will')\n```\n\nThat prints text.")
    assert t.announcing == 0 and t.worked >= 1


def test_a_promise_at_the_end_is_found_and_a_pointer_elsewhere_is_not() -> None:
    assert announces_next("Sets hold items.\n\nNext, we will turn to dictionaries.")
    assert announces_next("Sets hold items.\n\nNow let's look at dictionaries.")
    assert announces_next("Sets hold items.\n\nIn the next lesson we will look at dictionaries.") is None
    assert announces_next("Sets hold items. Now let's look at an example:\n\n```\n{1}\n```") is None
