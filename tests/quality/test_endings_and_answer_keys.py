"""A lesson cut off mid-sentence is trimmed or caught; an explanation that contradicts its own
answer key is caught (issue 13's examples among the cases)."""

from __future__ import annotations

import pytest

from courseforge.domain.drafts import ExerciseDraft, LessonDraft
from courseforge.quality.answer_keys import AnswerKeyGate, contradiction
from courseforge.quality.base import GateContext
from courseforge.quality.gates import EndingGate, trim_to_complete, unfinished

# -- endings --------------------------------------------------------------------------------------

CUT = [
    # Seen offline: the grammar's character bound cut the prose.
    ("To print text, type the following code: ```python print(", "code span"),
    ("An if statement chooses a branch. In this example, the program", "mid-sentence"),
    ("Loops repeat work.\n\n```python\nfor i in range(3):\n    print(i)", "code block"),
    ("Dictionaries map keys to values. Use `d[key] =", "code span"),
    # Seen offline at 80-200 words (issue 13's second demo): a list item, an announcement, a
    # code span the bound cut.
    ("Practice:\n\n1. Print a list.\n2. Write a function `add_to_list` that takes", "mid-sentence"),
    ("Dictionaries store pairs. Here's an example of how to use dictionaries in Python:", "announcing"),
    ("In the `script.py` file, write the following code:", "announcing"),
    ("Lists hold items.\n\nThe method `append", "code span"),
    ("Remember:\n\n- use four spaces\n- end a block with a blank line", "mid-sentence"),
    ("Loops repeat work.\n\n## Summary", "empty heading"),
    # Issue 24 (the offline demo and the outside set): an empty numbered heading, a list cut
    # after its first item or short of its announced count, a promised part never given.
    ("Functions take arguments.\n\n## 2.", "empty heading"),
    ("It can be called in several ways:\n\n* giving only the prompt: `ask('Quit?')`", "first item of a list"),
    (
        "There are three ways to loop:\n\n1. `for` over items.\n2. `while` on a condition.",
        "announces 3 items",
    ),
    ("Sets hold unique items.\n\nNow let's look at dictionaries.", "never comes"),
    ("Sets hold unique items.\n\nIn the second part of this lesson we will see dictionaries.", "never comes"),
    ("Sets hold unique items.\n\nWe will cover dictionaries in part 2 below.", "never comes"),
]
CLEAN = [
    "A loop repeats work. It stops when the condition is false.",
    "Run it:\n\n```python\nprint('hi')\n```",
    "Remember:\n\n- use four spaces.\n- end a block with a blank line.",
    'He said "stop."',
    "The list is [1, 2, 3].",
    "## Summary\n\nThat is all!",
    "Call `print()`.",
    "| loop | repeats |\n|---|---|\n| for | items |",
    "It ran in 2020.",
    # A pointer to another chapter or lesson is not a promise this lesson breaks.
    "Ranges are iterables. In chapter `tut-structures`, we will discuss `list` in more detail.",
    "Sets hold unique items. In the next lesson we will look at dictionaries.",
    "Loops repeat work. Later we will see more functions that take iterables.",
    "Two kinds exist:\n\n- `list`, ordered.\n- `set`, unordered.",
]


@pytest.mark.parametrize(("content", "why"), CUT)
def test_cut_off_lessons_are_recognised(content: str, why: str) -> None:
    problem = unfinished(content)
    assert problem is not None and why in problem


@pytest.mark.parametrize("content", CLEAN)
def test_complete_lessons_are_left_alone(content: str) -> None:
    assert unfinished(content) is None
    assert trim_to_complete(content) is None


@pytest.mark.parametrize(
    ("content", "trimmed"),
    [
        (CUT[0][0], None),  # nothing complete before the cut: the length gate will send it back
        (CUT[1][0], "An if statement chooses a branch."),
        (CUT[2][0], "Loops repeat work."),  # the unfinished code block goes whole
        ("Intro.\n\n```python\nx = 1\n```\n\nThen the program", "Intro.\n\n```python\nx = 1\n```"),
        ("We met Dr. Smith. He said hi and", "We met Dr. Smith."),  # not cut after "Dr."
        (
            "Lists hold items.\n\n1. Append one.\n2. Write a function that",
            "Lists hold items.\n\n1. Append one.",
        ),
        ("It ran in 2020. Then the", "It ran in 2020."),  # a year's period ends a sentence
        ("Intro.\n\n3. Write the", "Intro."),  # a list marker's period does not
        (CUT[5][0], "Dictionaries store pairs."),  # the announcement goes
        ("Functions take arguments.\n\n## 2.", "Functions take arguments."),  # the empty heading goes
        ("Sets hold unique items.\n\nNow let's look at dictionaries.", "Sets hold unique items."),
    ],
)
def test_trimming_ends_at_the_last_complete_sentence(content: str, trimmed: str | None) -> None:
    assert trim_to_complete(content) == trimmed
    if trimmed:
        assert unfinished(trimmed) is None


def test_the_ending_gate() -> None:
    cut = LessonDraft.model_construct(content=CUT[1][0], exercises=[], citations=[])
    done = LessonDraft.model_construct(content=CLEAN[0], exercises=[], citations=[])
    failed = EndingGate().check(cut, GateContext())
    assert not failed.passed and "cut off" in failed.reasons[0]
    assert EndingGate().check(done, GateContext()).passed


# -- answer keys ----------------------------------------------------------------------------------


def ex(
    type_: str,
    answer: str,
    explanation: str,
    options: list[str] | None = None,
    question: str = "What happens here?",
) -> ExerciseDraft:
    return ExerciseDraft.model_construct(
        type=type_,
        question=question,
        options=options,
        answer=answer,
        explanation=explanation,
        outcome=1,
    )


CONTRADICTIONS = [
    ex("true_false", "true", "False: the else branch runs only when the condition is false."),
    ex("true_false", "false", "This is true, because Python counts from zero."),
    ex(
        "multiple_choice",
        "if",
        "The correct answer is B: else runs when the condition fails.",
        ["if", "else", "elif"],
    ),
    ex(
        "multiple_choice",
        "A) 3",
        "Option C is correct, since range(4) has four items.",
        ["A) 3", "B) 5", "C) 4"],
    ),
    ex("multiple_choice", "x = 2", "The answer is x = 3 because the loop adds one.", ["x = 2", "x = 3"]),
    ex("short_answer", "4", "The loop runs five times, so it prints 5."),
    ex("short_answer", "10", "The result is 12: 3 times 4."),
    # Issue 24's outside set: a key flipped to another option, the explanation still explaining
    # the right one; a literal asserted as the result that is not the key.
    ex(
        "multiple_choice",
        "Exactly one",
        "There can be zero or more elif parts, and the else part is optional.",
        ["Exactly one", "Zero or more", "At least two"],
    ),
    ex("short_answer", "[0, 3, 6, 9, 12]", "range never includes its end point, so it returns [0, 3, 6, 9]."),
    # Short answers and options a rule can still read (issue 24, second round): a result cue
    # naming another option; "<option> is correct"; the clause restating the question naming
    # another option; a negation about another value in the same sentence; another date,
    # version or call than the key's.
    ex("multiple_choice", "True", "x is not an int, so the result is False.", ["True", "False", "None"]),
    ex("multiple_choice", "x == NA", "x == NA is NA itself; is.na(x) is correct.", ["x == NA", "is.na(x)"]),
    ex(
        "multiple_choice",
        "sorted()",
        "list.sort() orders the list in place, while sorted() returns a new list.",
        ["sorted()", "list.sort()", "reversed()"],
        question="Which call orders a list in place?",
    ),
    ex(
        "multiple_choice",
        "The numbers 1 to 9",
        "The colon binds first, so 1:n-1 is (1:10) - 1, the numbers 0 to 9, not 1:(n-1).",
        ["The numbers 1 to 9", "The numbers 0 to 9"],
    ),
    ex("short_answer", "March 1999", "The release came out on June 2nd, 1998."),
    ex("short_answer", "2.1r3", "Its third point release was numbered 2.1.3."),
    ex("short_answer", "y = list(1, 2)", "c() combines the values into a vector."),
    ex("short_answer", '"a b"', 'paste joins the elements pairwise with no separator, giving "a1".'),
]
AGREEMENTS = [
    # Ruling out the one wrong option it names is not asserting it (issue 24's option rule).
    ex(
        "multiple_choice",
        "tuple",
        "A list would allow changes after creation.",
        ["list", "tuple", "dict"],
    ),
    ex("true_false", "true", "True: an if statement runs its block when the condition holds."),
    ex("true_false", "false", "The statement is false; lists are mutable."),
    ex(
        "multiple_choice",
        "else",
        "The correct answer is B: else runs when the condition fails.",
        ["if", "else", "elif"],
    ),
    # Explaining why the wrong options are wrong is not asserting them.
    ex(
        "multiple_choice",
        "else",
        "if would run only when it is true, and elif needs a condition.",
        ["if", "else", "elif"],
    ),
    ex("short_answer", "4", "range(4) gives 0, 1, 2 and 3, so the loop prints 4 lines."),
    ex("short_answer", "6", "x = 5 first, then x + 1 makes the answer 6."),
    ex("short_answer", "print", "print shows a value on the screen."),
    # The key named as the answer outweighs a clause about another option that shares the
    # question's words; explaining the key in its own clause while mentioning another.
    ex(
        "multiple_choice",
        "set()",
        "The answer is set(): {} creates an empty dictionary, not a set.",
        ["{}", "set()", "[]"],
        question="How do you create an empty set?",
    ),
    ex(
        "multiple_choice",
        "list.sort()",
        "sorted() returns a new sorted list, while list.sort() sorts the list in place.",
        ["sorted()", "list.sort()", "reversed()"],
        question="Which call sorts a list in place?",
    ),
    ex("short_answer", "August 16th, 1993", "Ian Murdock founded the project on August 16th, 1993."),
    ex("short_answer", "3", "There are three of them."),
    ex("short_answer", "c(1, 2)", "c() combines its arguments, here 1 and 2, into a vector."),
]


@pytest.mark.parametrize("exercise", CONTRADICTIONS, ids=[e.explanation[:30] for e in CONTRADICTIONS])
def test_contradictions_are_caught(exercise: ExerciseDraft) -> None:
    assert contradiction(exercise) is not None


@pytest.mark.parametrize("exercise", AGREEMENTS, ids=[e.explanation[:30] for e in AGREEMENTS])
def test_agreeing_explanations_pass(exercise: ExerciseDraft) -> None:
    assert contradiction(exercise) is None


def test_the_answer_key_gate_names_the_exercise() -> None:
    lesson = LessonDraft.model_construct(
        content="x", exercises=[AGREEMENTS[0], CONTRADICTIONS[5]], citations=[]
    )
    result = AnswerKeyGate().check(lesson, GateContext())
    assert not result.passed and result.score == 0.5
    assert result.reasons[0].startswith("exercise 2: the answer key is 4 but the explanation gives 5")
