"""The one list of lesson gates: what phase 3 judges every attempt with, and what
`courseforge check` judges an existing course with.

In order: length, exercises and answer keys, similarity to the lesson's outcomes, a complete
ending (not cut off mid-sentence or inside a code block, not on an empty heading, a list cut
short or a promised part never given), teaching rather than announcing, explanations that agree with their
answer keys, exercises naming the lesson's own outcomes (and every outcome assessed), safety,
self-consistency (only
where samples were drawn), the LLM judge (only where a `Judge` is given: generation has models,
`check` does not), grounding in the sources, and citations of known sources. Embeddings and any
blocking work come through the arguments, so the same list runs in-process, in a workflow and
in tests.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from ..config import Settings
from ..domain.drafts import LessonDraft
from ..providers.base import Embedder
from .answer_keys import AnswerKeyGate
from .base import Gate, GateContext, GateResult
from .gates import EndingGate, evaluate_lesson
from .grounding import (
    CitationCoverageGate,
    ClaimSupport,
    GroundingGate,
    KnownSourcesGate,
    factual_claims,
    ground_claims,
)
from .redundancy import ConsistencyGate
from .safety import SafetyGate
from .teaching import TeachesGate

__all__ = [
    "ExerciseOutcomesGate",
    "Judge",
    "JudgeOutcome",
    "LessonUnderTest",
    "lesson_claims",
    "rule_gates",
    "run_lesson_gates",
    "safety_gate",
]

T = TypeVar("T")
Blocking = Callable[..., Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class LessonUnderTest:
    """A lesson as the gates see it: its draft and what it is judged against."""

    lesson_id: str
    draft: LessonDraft
    #: The outcomes this lesson teaches, by number (1-based, the draft's exercise labels).
    outcome_numbers: Sequence[int]
    #: Outcome id -> text, for those outcomes.
    outcomes: Mapping[str, str]
    #: Source id -> text (empty: no grounding, and a lesson may cite nothing).
    sources: Mapping[str, str] = field(default_factory=dict)
    #: Lowest pairwise cosine of the samples this draft was chosen from (None: not sampled).
    consistency: float | None = None
    #: Per exercise, every outcome number it is tagged with (a course's `outcome_ids`); None:
    #: the draft's one `outcome` per exercise.
    assessed: Sequence[Sequence[int]] | None = None
    #: The course's outcomes of other sections (id -> text): with a similarity `rival_margin`,
    #: a lesson that fits one of them better than its own is borderline (related but wrong).
    rivals: Mapping[str, str] = field(default_factory=dict)
    #: Outcome id (own or rival) -> the title of a lesson that teaches it: where the similarity
    #: thresholds are `titled`, each outcome is compared as "title: outcome".
    titles: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class JudgeOutcome:
    """What a judge added: its gate (None: it did not judge), the similarity verdict (possibly
    settled by the judge on a borderline score), and the claims with its answers applied."""

    gate: GateResult | None
    similarity: GateResult | None
    claims: list[ClaimSupport]


class Judge(Protocol):
    async def __call__(
        self, lesson: LessonUnderTest, first: Sequence[GateResult], claims: list[ClaimSupport]
    ) -> JudgeOutcome:
        """Judge `lesson` given the first gates' results and its grounded claims."""
        ...


def safety_gate(settings: Settings) -> SafetyGate:
    """The safety gate as `gates.safety` configures it."""
    s = settings.gates.safety
    return SafetyGate(
        s.pii,
        region=s.phone_region,
        profanity=s.profanity,
        classifier=s.classifier,
        threshold=s.classifier_threshold,
        allowed=s.allow_words,
    )


async def lesson_claims(
    content: str, sources: Mapping[str, str], embedder: Embedder, settings: Settings
) -> list[ClaimSupport]:
    """A lesson's factual claims grounded in `sources` at the embedder's `gates.grounding`
    thresholds."""
    gs = settings.gates.grounding
    return await ground_claims(
        factual_claims(content),
        sources,
        embedder,
        supported=gs.supported.get(embedder.name, 0.6),
        unsupported=gs.unsupported.get(embedder.name, 0.4),
    )


class ExerciseOutcomesGate(Gate[LessonDraft]):
    """Every exercise names an outcome this lesson teaches, and every such outcome is assessed.
    Reads the lesson's outcome numbers from `context.values["outcome_numbers"]`, and, when
    given, `context.values["assessed"]` (exercise by exercise, every outcome number it is tagged
    with, as a course's `outcome_ids`), which overrides the draft's one `outcome` per exercise:
    an exercise tagged with two outcomes assesses both."""

    name = "exercise_outcomes"
    advice = "Match each exercise to an outcome of this lesson."

    def check(self, artifact: LessonDraft, context: GateContext) -> GateResult:
        wanted = set(context.values.get("outcome_numbers", ()))
        assessed = context.values.get("assessed")
        tags = (
            [list(t) for t in assessed] if assessed is not None else [[e.outcome] for e in artifact.exercises]
        )
        named = [n for t in tags for n in t]
        stray = sorted({n for n in named if n not in wanted})
        missing = sorted(wanted - set(named))
        reasons = []
        if stray:
            reasons.append(
                f"exercises name outcome(s) {stray} that this lesson does not teach (use {sorted(wanted)})"
            )
        if missing:
            reasons.append(f"no exercise assesses outcome(s) {missing}")
        score = 1.0 - len(missing) / len(wanted) if wanted else 1.0
        return self.result(not reasons, score, reasons, "pass" if not reasons else "fail")


def rule_gates(lesson: LessonUnderTest, settings: Settings, embedder_name: str) -> list[GateResult]:
    """The gates that need no embedding and no model, in order: ending, teaching, answer keys,
    exercise outcomes, safety, self-consistency. Plain CPU work on picklable arguments, so a
    caller may run it in a thread or another process; the same results wherever it runs."""
    gates = settings.gates
    draft = lesson.draft
    results = [EndingGate().check(draft, GateContext())]
    if gates.teaches.enabled:
        results.append(
            TeachesGate(gates.teaches.max_announce_share, gates.teaches.min_worked).check(
                draft, GateContext()
            )
        )
    results.append(AnswerKeyGate().check(draft, GateContext()))
    outcome_tags: dict[str, Any] = {"outcome_numbers": lesson.outcome_numbers}
    if lesson.assessed is not None:
        outcome_tags["assessed"] = lesson.assessed
    results.append(ExerciseOutcomesGate().check(draft, GateContext(values=outcome_tags)))
    if gates.safety.enabled:
        results.append(safety_gate(settings).check(draft, GateContext()))
    if lesson.consistency is not None:
        bound = gates.consistency.min_cosine.get(embedder_name, 0.85)
        results.append(
            ConsistencyGate(bound).check(draft, GateContext(values={"consistency": lesson.consistency}))
        )
    return results


async def run_lesson_gates(
    lesson: LessonUnderTest,
    *,
    settings: Settings,
    embedder: Embedder,
    blocking: Blocking,
    judge: Judge | None = None,
) -> list[GateResult]:
    """Every lesson gate, in the order of the module docstring. `blocking(fn, *args)` runs
    CPU-bound work (`rule_gates`, one hop per attempt) off the event loop where the caller can:
    a service's bounded gate executor (`gates.workers`), inline in a workflow."""
    gates = settings.gates
    draft = lesson.draft
    results = await evaluate_lesson(draft, lesson.outcomes, embedder, gates, lesson.rivals, lesson.titles)
    results += await blocking(rule_gates, lesson, settings, embedder.name)
    grounded = bool(lesson.sources) and gates.grounding.enabled
    claims = await lesson_claims(draft.content, lesson.sources, embedder, settings) if grounded else []
    if judge is not None:
        outcome = await judge(lesson, list(results), claims)
        claims = outcome.claims
        if outcome.similarity is not None:
            results = [outcome.similarity if r.gate == "similarity" else r for r in results]
        if outcome.gate is not None:
            results.append(outcome.gate)
    if grounded:
        results.append(
            GroundingGate(gates.grounding.min_coverage).check(
                draft, GateContext(values={"grounding": claims})
            )
        )
        # Citation coverage apart from support: supported by a source it cites.
        results.append(
            CitationCoverageGate(gates.grounding.min_citation_coverage).check(
                draft, GateContext(values={"grounding": claims, "citations": draft.citations})
            )
        )
    cited = KnownSourcesGate().check(draft, GateContext(values={"sources": lesson.sources}))
    if not cited.passed:
        results.append(cited)
    return results
