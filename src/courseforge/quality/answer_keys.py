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
- multiple choice: the explanation mentions exactly one option's whole text (of 2 characters or
  more), and it is not the answer's (issue 24: a key flipped to another option while the
  explanation still explains the right one);
- a numeric answer: the explanation asserts a different number as the result ("the answer is
  5", "it prints 5", "= 5", "returns 5") and never mentions the answer's number;
- any other answer: the explanation asserts a bracketed or quoted value as the result ("so it
  returns [0, 3, 6, 9]") that is not the key, and never contains the key.

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
            named_options = _mentioned_options(explanation, options)
            if (
                len(named_options) == 1
                and right not in named_options
                and not _ruled_out(explanation, options[named_options[0]])
            ):
                (other,) = named_options
                return f"the answer key is {options[right]!r} but the explanation is about {options[other]!r}"
    literal = _asserted_literal(explanation)
    if exercise.type != "multiple_choice" and literal is not None:
        key = _plain(answer)
        if key and literal != key and key not in _plain(explanation):
            return f"the answer key is {answer.strip()!r} but the explanation gives {literal!r}"
    numbers = [float(n) for n in _NUMBER.findall(answer)]
    if len(numbers) == 1:
        key_number = numbers[0]
        mentioned = {float(n) for n in _NUMBER.findall(explanation)}
        asserted = [float(n) for n in _ASSERTED_NUMBER.findall(explanation)]
        wrong = [n for n in asserted if n != key_number]
        if wrong and key_number not in mentioned:
            return f"the answer key is {_fmt(key_number)} but the explanation gives {_fmt(wrong[0])}"
    return None


#: Option texts shorter than this are not looked for in the explanation (a lone letter).
_MIN_OPTION_CHARS = 2
#: A literal the explanation asserts as the result: "returns [0, 3, 6, 9]", "the answer is 'x'".
_ASSERTED_LITERAL = re.compile(
    rf"(?:{_ASSERTS})\s*(\[[^\]\n]*\]|\([^)\n]*\)|\{{[^}}\n]*\}}|\"[^\"\n]+\"|'[^'\n]+'|`[^`\n]+`)",
    re.IGNORECASE,
)


def _plain(text: str) -> str:
    return " ".join(text.casefold().replace("`", "").split()).strip(" .")


def _mentioned_options(explanation: str, options: Sequence[str]) -> list[int]:
    """The options whose whole text the explanation contains (long enough to mean something)."""
    said = f" {_plain(explanation)} "
    found = []
    for i, option in enumerate(options):
        text = _plain(_LABEL.sub("", option.strip(), count=1))
        if len(text) < _MIN_OPTION_CHARS:
            continue
        if re.search(rf"(?<!\w){re.escape(text)}(?!\w)", said):
            found.append(i)
    return found


#: Words that rule an option out rather than assert it ("a list would allow changes", "not B").
_RULING_OUT = re.compile(
    r"\b(?:not|never|no|unlike|wrong|incorrect|instead|rather\s+than|would|only\s+when|needs|fails?)\b|n't",
    re.IGNORECASE,
)


def _ruled_out(explanation: str, option: str) -> bool:
    """Does the sentence that names `option` rule it out rather than assert it?"""
    text = _plain(_LABEL.sub("", option.strip(), count=1))
    for sentence in re.split(r"(?<=[.!?;])\s+", explanation):
        if text in _plain(sentence) and _RULING_OUT.search(sentence):
            return True
    return False


def _asserted_literal(explanation: str) -> str | None:
    """The bracketed or quoted value the explanation asserts as the answer, if exactly one."""
    values = {_plain(m.group(1)).strip("`'\"") for m in _ASSERTED_LITERAL.finditer(explanation)}
    return values.pop() if len(values) == 1 else None


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
