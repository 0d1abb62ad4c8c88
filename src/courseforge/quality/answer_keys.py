"""Exercises whose explanation contradicts their own answer key.

Small models write an answer key and then explain a different answer ("answer: 4" /
"explanation: the loop runs five times, so it prints 5"; "answer: true" / "explanation: this is
false because ..."). Such an exercise teaches the wrong thing whichever half is right, so it
fails the lesson (the next attempt is told which exercise). The checks are rules a reader can
follow, each about what the explanation *asserts* the answer is:

- true/false: the explanation's verdict ("True.", "This is false", "the statement is
  incorrect") differs from the answer;
- multiple choice: the explanation names another option as the right one ("the correct answer
  is B", "option C is correct", or quotes another option's text after such words) and not the
  answer's;
- a numeric answer: the explanation asserts a different number as the result ("the answer is
  5", "it prints 5", "= 5", "returns 5") and never mentions the answer's number.

Explaining why the wrong options are wrong is fine: only assertions of the answer count.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from ..domain.course import Exercise
from ..domain.drafts import ExerciseDraft
from .base import Gate, GateContext, GateResult

__all__ = ["AnswerKeyGate", "contradiction"]

ExerciseLike = Exercise | ExerciseDraft

_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w.]*\w)")
#: Words that assert what the answer is, followed by the asserted value.
_ASSERTS = (
    r"(?:the\s+)?(?:correct\s+|right\s+)?(?:answer|result|output|value|total|sum)\s+(?:is|will\s+be|would\s+be|=|:)"
    r"|(?:it|this|the\s+code|the\s+program|the\s+function|the\s+loop|python)\s+(?:prints|returns|outputs|shows|gives|displays)"
    r"|(?:prints|returns|outputs|evaluates\s+to|equals)"
    r"|="
)
_ASSERTED_NUMBER = re.compile(rf"(?:{_ASSERTS})\s*[`'\"(]*\s*(-?\d+(?:\.\d+)?)", re.IGNORECASE)
_TF_VERDICT = re.compile(
    r"^\s*(true|false)\b"
    r"|\b(?:statement|claim|sentence|this|it)\s+is\s+(true|false|correct|incorrect|wrong|right|not\s+true|not\s+correct)\b",
    re.IGNORECASE,
)
#: "the correct answer is B", "option (c) is correct": an option label is a capital letter, or a
#: small one in brackets (a bare "a" is a word: "the right answer is a list").
_LABEL_REF = r"(?:([A-F])\b|\(([a-f])\))"
_OPTION_LABEL = re.compile(
    rf"(?i:\b(?:correct|right)\s+(?:answer|option|choice)\s+is\s+(?:option\s+)?){_LABEL_REF}"
    rf"|(?i:\b(?:option|choice|answer)\s+){_LABEL_REF}(?i:\s+is\s+(?:the\s+)?(?:correct|right)\b)",
)
_OPTION_TEXT_CUE = re.compile(
    r"\b(?:correct|right)\s+(?:answer|option|choice)\s+is\b|\bthe\s+answer\s+is\b", re.IGNORECASE
)
_LABEL = re.compile(r"^\(?([a-z])\s*[).:\]]\s+", re.IGNORECASE)


def _norm(text: str) -> str:
    return " ".join(_LABEL.sub("", text.strip(), count=1).casefold().split()).strip(" .")


def _truth(word: str) -> bool:
    word = " ".join(word.lower().split())
    return word in ("true", "correct", "right")


def _answer_index(answer: str, options: Sequence[str]) -> int | None:
    a = _norm(answer)
    for i, option in enumerate(options):
        if _norm(option) == a:
            return i
    bare = re.fullmatch(r"\(?([a-z])\)?[).]?", answer.strip(), re.IGNORECASE)
    if bare and ord(bare.group(1).lower()) - ord("a") < len(options):
        return ord(bare.group(1).lower()) - ord("a")
    return None


def contradiction(exercise: ExerciseLike) -> str | None:
    """What the explanation asserts against the answer key, or None."""
    explanation, answer = exercise.explanation or "", exercise.answer or ""
    if exercise.type == "true_false":
        key = answer.strip().lower().rstrip(".")
        match = _TF_VERDICT.search(explanation)
        if key in ("true", "false") and match:
            said = _truth(match.group(1) or match.group(2))
            if said != (key == "true"):
                return f"the answer key says {key} but the explanation says {'true' if said else 'false'}"
        return None
    options = list(exercise.options or [])
    if exercise.type == "multiple_choice" and options:
        right = _answer_index(answer, options)
        if right is not None:
            for match in _OPTION_LABEL.finditer(explanation):
                label = next(g for g in match.groups() if g).lower()
                index = ord(label) - ord("a")
                if index < len(options) and index != right:
                    return f"the answer key is option {chr(ord('a') + right).upper()} but the explanation says {label.upper()} is correct"
            cue = _OPTION_TEXT_CUE.search(explanation)
            if cue:
                after = _norm(explanation[cue.end() :])
                named = [i for i, o in enumerate(options) if _norm(o) and after.startswith(_norm(o))]
                if named and right not in named:
                    return (
                        f"the answer key is {options[right]!r} but the explanation says {options[named[0]]!r}"
                    )
    numbers = [float(n) for n in _NUMBER.findall(answer)]
    if len(numbers) == 1:
        key_number = numbers[0]
        mentioned = {float(n) for n in _NUMBER.findall(explanation)}
        asserted = [float(n) for n in _ASSERTED_NUMBER.findall(explanation)]
        wrong = [n for n in asserted if n != key_number]
        if wrong and key_number not in mentioned:
            return f"the answer key is {_fmt(key_number)} but the explanation gives {_fmt(wrong[0])}"
    return None


def _fmt(number: float) -> str:
    return str(int(number)) if number.is_integer() else str(number)


class AnswerKeyGate(Gate[Any]):
    """Every exercise's explanation agrees with its own answer key. Score: the share of
    exercises that agree."""

    name = "answer_keys"
    advice = "Make each explanation agree with its answer."

    def check(self, artifact: Any, context: GateContext) -> GateResult:
        exercises: Sequence[ExerciseLike] = artifact.exercises
        reasons = [
            f"exercise {number}: {problem}; make the explanation justify the answer key"
            for number, exercise in enumerate(exercises, start=1)
            if (problem := contradiction(exercise))
        ]
        score = 1.0 - len(reasons) / len(exercises) if exercises else 1.0
        return self.result(not reasons, score, reasons, "pass" if not reasons else "fail")
