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
  returns [0, 3, 6, 9]", "giving "X1"") that is not the key, and never contains the key.

Issue 24's short-answer and option rules (the outside set's wrong keys a rule could read):

- multiple choice: an option's text followed by "is correct", or after a result cue ("the
  result is False", "it returns zip()"), names it as the answer;
- multiple choice: the clause of the explanation that restates the question names one option
  (it shares at least two of the question's content words, stemmed to five letters, and more
  than any clause naming the key), and that option is not the key ("zip() pairs the entries of
  two sequences; enumerate() gives index and value" for "which function pairs up the entries of
  two sequences?"); a clause that rules its option out ("not", "would", ...) names nothing;
- a short answer (at most six words) with numbers, dates or versions in it: the explanation
  has such tokens and none of the key's ("November 1994" against "founded on August 16th,
  1993"; "5.0r1" against "the first is 5.0.1");
- a short answer that calls a function: the explanation names other calls and not the key's
  ("x = vector(...)" against "c() concatenates its arguments").

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
    r"|(?:prints|returns|outputs|evaluates\s+to|equals|giving|gives|yields|produces)"
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
    r"\b(?:correct|right)\s+(?:answer|option|choice)\s+is\b|\bthe\s+(?:answer|result)\s+is\b"
    r"|\b(?:it|this|so\s+it)\s+returns\b",
    re.IGNORECASE,
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
        return _true_false(answer, explanation)
    options = list(exercise.options or [])
    if exercise.type == "multiple_choice" and options:
        right = _answer_index(answer, options)
        if right is not None:
            problem = _other_option(exercise.question or "", explanation, options, right)
            if problem:
                return problem
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
    if exercise.type != "multiple_choice":
        return _short_answer(answer, explanation)
    return None


def _true_false(answer: str, explanation: str) -> str | None:
    key = answer.strip().lower().rstrip(".")
    match = _TF_VERDICT.search(explanation)
    if key in ("true", "false") and match:
        said = _truth(match.group(1) or match.group(2))
        if said != (key == "true"):
            return f"the answer key says {key} but the explanation says {'true' if said else 'false'}"
    return None


def _other_option(question: str, explanation: str, options: Sequence[str], right: int) -> str | None:
    """The option other than the key (`right`) that the explanation asserts, as a reason."""
    for match in _OPTION_LABEL.finditer(explanation):
        label = next(g for g in match.groups() if g).lower()
        index = ord(label) - ord("a")
        if index < len(options) and index != right:
            return f"the answer key is option {chr(ord('a') + right).upper()} but the explanation says {label.upper()} is correct"
    named = _named_as_answer(explanation, options)
    if named and right not in named:
        return f"the answer key is {options[right]!r} but the explanation says {options[named[0]]!r}"
    if right in named:
        return None  # the explanation names the key as the answer: what else it discusses is context
    named_options = _mentioned_options(explanation, options)
    if (
        len(named_options) == 1
        and right not in named_options
        and not _ruled_out(explanation, options[named_options[0]])
    ):
        (other,) = named_options
        return f"the answer key is {options[right]!r} but the explanation is about {options[other]!r}"
    restated = _restating_option(question, explanation, options, right)
    if restated is not None:
        return (
            f"the answer key is {options[right]!r} but the explanation answers the question "
            f"with {options[restated]!r}"
        )
    return None


def _named_as_answer(explanation: str, options: Sequence[str]) -> list[int]:
    """Options the explanation names as the answer: after a result cue ("the answer is",
    "the result is", "it returns"), or before "is correct"."""
    named: list[int] = []
    for cue in _OPTION_TEXT_CUE.finditer(explanation):
        after = _norm(explanation[cue.end() :])
        named += [i for i, o in enumerate(options) if _norm(o) and after.startswith(_norm(o))]
    said = _plain(explanation)
    for i, option in enumerate(options):
        text = _plain(_LABEL.sub("", option.strip(), count=1))
        if len(text) >= _MIN_OPTION_CHARS and re.search(
            rf"(?<!\w){re.escape(text)}\s+is\s+(?:the\s+)?(?:correct|right)\b", said
        ):
            named.append(i)
    return list(dict.fromkeys(named))


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
    """Does the clause that names `option` rule it out rather than assert it? A clause, not
    the whole sentence: in "(1:10) - 1, the numbers 0 to 9, not 1:(n-1)" the "not" is about
    another value."""
    text = _plain(_LABEL.sub("", option.strip(), count=1))
    return any(
        text in _plain(clause) and _RULING_OUT.search(clause) for clause in _clauses(explanation, text)
    )


#: Where one clause of an explanation ends and the next begins.
_CLAUSE_BREAK = re.compile(
    r"[.!?;:](?:\s+|$)|,\s+|\s+(?:and|but|while|whereas|since|because)\s+|\s+[-\u2013\u2014]\s+"
)


def _clauses(text: str, keep: str = "") -> list[str]:
    """The clauses of `text`, never splitting inside an occurrence of `keep` (an option whose
    own text has commas or "and" in it)."""
    plain = " ".join(text.replace("`", "").split())
    low = plain.casefold()
    protected = [(m.start(), m.end()) for m in re.finditer(re.escape(keep), low)] if keep else []
    cuts = [0]
    for m in _CLAUSE_BREAK.finditer(plain):
        if not any(a < m.end() and m.start() < b for a, b in protected):
            cuts += [m.start(), m.end()]
    cuts.append(len(plain))
    return [
        plain[cuts[i] : cuts[i + 1]] for i in range(0, len(cuts), 2) if plain[cuts[i] : cuts[i + 1]].strip()
    ]


_STOP = frozenset(
    [
        "a",
        "an",
        "the",
        "of",
        "to",
        "in",
        "on",
        "at",
        "by",
        "for",
        "with",
        "from",
        "into",
        "as",
        "and",
        "or",
        "but",
        "not",
        "no",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "which",
        "what",
        "when",
        "where",
        "who",
        "whom",
        "how",
        "why",
        "does",
        "do",
        "did",
        "can",
        "could",
        "should",
        "would",
        "will",
        "shall",
        "may",
        "might",
        "must",
        "one",
        "ones",
        "your",
        "you",
        "their",
        "there",
        "than",
        "then",
        "so",
        "such",
        "each",
        "any",
        "all",
        "some",
        "only",
        "also",
        "just",
        "used",
        "use",
        "using",
    ]
)


def _stems(text: str) -> set[str]:
    """Content words cut to five letters after a plural s ("levels" ~ "level", "pairs" ~
    "pair"): the section-concepts gate's matching, for the same reason (no stemmer offline)."""
    out = set()
    for word in re.findall(r"[a-z][a-z0-9_]+", text.casefold()):
        if word in _STOP:
            continue
        if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
            word = word[:-1]
        out.add(word[:5])
    return out


#: A restating clause shares at least this many of the question's content stems.
_RESTATES = 2


def _restating_option(question: str, explanation: str, options: Sequence[str], right: int) -> int | None:
    """The option named alone in the clause that restates the question, when it is not the key.

    For each clause that names exactly one option (whole text, as written) and does not rule it
    out, count the question's content stems in it; the option of the clause sharing the most
    (at least `_RESTATES`, more than every clause naming the key, and no tie) is the one the
    explanation gives as the answer."""
    wanted = _stems(question)
    texts = [_plain(_LABEL.sub("", o.strip(), count=1)) for o in options]
    best: dict[int, int] = {}
    for clause in _clauses(explanation):
        said = f" {_plain(clause)} "
        named = [i for i, t in enumerate(texts) if t and _names(said, t)]
        if len(named) != 1 or _RULING_OUT.search(clause):
            continue
        shared = len(wanted & _stems(clause))
        best[named[0]] = max(best.get(named[0], 0), shared)
    if not best:
        return None
    top = max(best.values())
    leaders = [i for i, v in best.items() if v == top]
    if top < _RESTATES or len(leaders) != 1 or leaders[0] == right or best.get(right, 0) >= top:
        return None
    return leaders[0]


def _names(said: str, text: str) -> bool:
    """Does the (plain) clause name this option text? One letter names an option only as a
    word of its own that is not an English word ("q the quantile function", not "a list")."""
    if len(text) < _MIN_OPTION_CHARS and text in ("a", "i"):
        return False
    return re.search(rf"(?<![\w.]){re.escape(text)}(?![\w(])", said) is not None


#: A token with a digit in it: a number, a date's day or year, a version ("5.0.1").
_DIGITS = re.compile(r"[\w.]*\d[\w.]*")
_MONTHS = frozenset(
    [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ]
)
_CALL = re.compile(r"([A-Za-z_][\w.]*)\s*\(")
#: A short answer: at most this many words (a name, a date, a number, one call).
_SHORT_WORDS = 6


def _short_answer(answer: str, explanation: str) -> str | None:
    """A short key the explanation gives another number, date, version or call for."""
    if not answer.strip() or len(answer.split()) > _SHORT_WORDS:
        return None
    key_tokens = {t.strip(".") for t in _DIGITS.findall(answer.casefold())} - {""}
    said_tokens = {t.strip(".") for t in _DIGITS.findall(explanation.casefold())} - {""}
    if key_tokens and said_tokens and not key_tokens & said_tokens:
        months = {w for w in re.findall(r"[a-z]+", answer.casefold()) if w in _MONTHS}
        if not months or not months <= set(re.findall(r"[a-z]+", explanation.casefold())):
            given = max(sorted(said_tokens), key=lambda t: sum(c.isdigit() for c in t))
            return f"the answer key is {answer.strip()!r} but the explanation gives {given!r}"
    key_calls = {c.casefold() for c in _CALL.findall(answer)}
    said_calls = {c.casefold() for c in _CALL.findall(explanation)}
    if key_calls and said_calls and not key_calls & said_calls:
        return f"the answer key calls {sorted(key_calls)[0]}() but the explanation names {sorted(said_calls)[0]}()"
    return None


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
