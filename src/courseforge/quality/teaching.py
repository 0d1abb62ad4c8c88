"""Does a lesson teach, or only announce? And does it end on a promise it never keeps?

A lesson can sit close to its outcome in embedding space while teaching nothing: "In this
lesson we are going to look at branches … by the end you will be able to … let's get started"
names every word of the outcome (measured on the outside set, docs/quality.md: MiniLM scored
such announcements as high as the real lessons they replaced). Embeddings cannot see the
difference; the sentences' form can. A sentence about the lesson itself — what "we will" do,
what "this lesson" covers, "let's get started" — is an announcement; worked content is what a
reader could learn from: a code block, an example, a definition, a fact with a number or a
name in code, a step list.

`announcement_share` and `worked_content` measure those; `TeachesGate` fails a lesson whose
prose is mostly announcement and that has no worked content to show for it. `announces_next`
finds a lesson whose last paragraph promises a part that never comes ("Now let's look at …",
"In the second part we will …") — the ending gate reports it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..domain.course import Lesson
from ..domain.drafts import LessonDraft
from .base import Gate, GateContext, GateResult

__all__ = ["TeachesGate", "Teaching", "announcement_share", "announces_next", "teaching_profile"]

_FENCED = re.compile(r"```.*?(?:```|\Z)", re.DOTALL)
_SENTENCE = re.compile(r"(?<=[.!?…])[\"'”’)\]]*\s+|\n\s*\n|\n(?=\s*(?:[-*+]|\d+[.)])\s)")
#: A sentence about the lesson itself rather than its subject.
_META = re.compile(
    r"""\b(?:
        (?:in|by\ the\ end\ of|throughout|during|for)\ (?:this|the)\ (?:lesson|course|module|tutorial|unit|video|session)
      | this\ (?:lesson|topic|course|module|tutorial|unit|session)
      | (?:we|you)\s*(?:'ll|’ll|\ will|\ are\ going\ to|\ shall|\ are\ about\ to|\ would\ like\ to)
      | let'?s | let’s | let\ us
      | welcome | without\ further\ ado | ready\? | get\ started | dive\ in
      | (?:will\ be|are|is)\ (?:explained|covered|discussed|introduced|shown|presented|explored)
      | here\ is\ what | what\ we\ will | our\ (?:goal|journey|aim|focus)
      | (?:first|then|next|finally),?\ we\b
    )""",
    re.IGNORECASE | re.VERBOSE,
)
_INLINE_CODE = re.compile(r"`[^`\n]+`")
_EXAMPLE = re.compile(r"\b(?:for example|for instance|e\.g\.|such as|consider)\b", re.IGNORECASE)
#: "A tuple consists of …", "`NA` means …", "is called", "is defined as": a definition.
_DEFINITION = re.compile(
    r"\b(?:is|are)\ (?:a|an|the)\b|\b(?:means|consists\ of|is\ called|is\ defined\ as|refers\ to|stands\ for)\b",
    re.IGNORECASE | re.VERBOSE,
)
_NUMBER = re.compile(r"\d")
_STEP = re.compile(r"^\s*(?:\d+[.)]|[-*+])\s+\S", re.MULTILINE)


def _sentences(prose: str) -> list[str]:
    parts = (" ".join(p.split()) for p in _SENTENCE.split(prose))
    return [p for p in parts if len(p.split()) >= 3 and not p.lstrip().startswith("#")]


@dataclass(frozen=True, slots=True)
class Teaching:
    """How a lesson's prose divides between announcing and teaching."""

    sentences: int
    announcing: int
    #: Code blocks, examples, definitions and facts found outside the announcing sentences.
    worked: int

    @property
    def share(self) -> float:
        return self.announcing / self.sentences if self.sentences else 0.0


def teaching_profile(content: str) -> Teaching:
    code_blocks = len(re.findall(r"^\s*```", content, re.MULTILINE)) // 2
    prose = _FENCED.sub(" ", content)
    sentences = _sentences(prose)
    meta = [s for s in sentences if _META.search(s)]
    taught = [s for s in sentences if not _META.search(s)]
    worked = code_blocks + sum(
        1
        for s in taught
        if _INLINE_CODE.search(s) or _EXAMPLE.search(s) or _DEFINITION.search(s) or _NUMBER.search(s)
    )
    return Teaching(len(sentences), len(meta), worked)


def announcement_share(content: str) -> float:
    """Share of the lesson's prose sentences that talk about the lesson instead of its subject."""
    return teaching_profile(content).share


class TeachesGate(Gate[Lesson | LessonDraft]):
    """The lesson teaches: at most `max_share` of its sentences announce, and one that announces
    in more than half that share shows at least `min_worked` pieces of worked content (code,
    example, definition, fact). Prose that never announces passes whatever its form (a history
    narrative has few code spans or definitions). Score: the share of announcing sentences.

    Measured on the outside set (docs/quality.md): real sections announce in 0-15 % of their
    sentences; announcement-only lessons in 45-88 %, with at most one piece of worked content."""

    name = "teaches"
    advice = "Teach it: show an example, a definition, steps or code instead of announcing."

    def __init__(self, max_share: float = 0.4, min_worked: int = 2) -> None:
        self.max_share = max_share
        self.min_worked = min_worked

    def check(self, artifact: Lesson | LessonDraft, context: GateContext) -> GateResult:
        t = teaching_profile(artifact.content)
        reasons = []
        thin = t.share > self.max_share / 2 and t.worked < self.min_worked
        if t.sentences and (t.share > self.max_share or thin):
            reasons.append(
                f"it announces instead of teaching: {t.announcing} of {t.sentences} sentences talk about "
                f"the lesson and {t.worked} show worked content; teach the outcome itself with an example, "
                "a definition, steps or code"
            )
        return self.result(
            not reasons,
            round(t.share, 4),
            reasons,
            "pass" if not reasons else "fail",
            threshold=self.max_share,
        )


#: A sentence promising more of this lesson: "Now let's look at …", "Next, we will turn to …",
#: "In the second part …", "… in part 2 below." (not "the next lesson/chapter": that is a pointer).
_PROMISE = re.compile(
    r"""^(?:(?:now|next|then|so|first),?\s+)?(?:let'?s|let’s|let\ us|we(?:'ll|’ll|\ will|\ are\ going\ to|\ shall)|you(?:'ll|’ll|\ will))\s+(?:now\s+)?
        (?:look|see|turn|move|cover|discuss|learn|explore|examine|start|begin|go|study|continue|write|build|show)\b
      | \b(?:in|for)\ (?:the\ )?(?:next|second|following|third|last)\ (?:part|step|half)\b
      | \bpart\ \d+\b.*\bbelow\b
      | \b(?:as\ follows|below)[.:]?\s*$""",
    re.IGNORECASE | re.VERBOSE,
)
_ELSEWHERE = re.compile(
    r"\b(?:next|another|later|following|previous)\s+(?:lesson|chapter|course|module|unit)\b|\bchapter\b", re.I
)


def announces_next(content: str) -> str | None:
    """The promise the lesson's last paragraph makes and never keeps, or None: every sentence
    of the last prose paragraph announces more of this lesson ("Now let's look at X.")."""
    text = content.rstrip()
    if text.endswith("```"):
        return None
    last = re.split(r"\n\s*\n", text)[-1]
    if re.match(r"^\s*(?:[-*+]|\d+[.)]|#)", last):
        return None
    sentences = _sentences(last) or [" ".join(last.split())]
    if all(_PROMISE.search(s) and not _ELSEWHERE.search(s) for s in sentences):
        return sentences[-1]
    return None
