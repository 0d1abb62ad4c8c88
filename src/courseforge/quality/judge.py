"""The LLM judge's verdict format and the gate that reads it.

The judge scores a lesson on correctness, comprehensiveness and readability (1-5); the composite
weighs them 0.6 / 0.2 / 0.2 (correctness counts most). The judge's answer is a bounded pydantic
draft (`JudgeDraft`) so a weak model cannot ramble and invalid answers are re-asked with the
validation error. The gate itself is pure: the pipeline asks the model (through Effects) and
hands the parsed draft in as `context.values["judge"]`. The calibration sample's reference
verdict is recorded by the pipeline beside this one, never read here (ground truth for the
judge, not a substitute for it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .base import Gate, GateContext, GateResult

__all__ = [
    "WEIGHTS",
    "ClaimCheck",
    "ExerciseCheck",
    "JudgeDraft",
    "JudgeGate",
    "composite",
    "in_sample",
]

#: composite = 0.6 x correctness + 0.2 x comprehensiveness + 0.2 x readability.
WEIGHTS = {"correctness": 0.6, "comprehensiveness": 0.2, "readability": 0.2}

Score = Annotated[int, Field(ge=1, le=5)]
Short = Annotated[str, Field(max_length=240)]


class _Draft(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ExerciseCheck(_Draft):
    """The judge's view of one exercise's answer key (1-based number)."""

    number: int = Field(ge=1, le=10)
    answer_correct: bool
    problem: Short = ""


class ClaimCheck(_Draft):
    """The judge's view of one claim against the sources (grounding's uncertain claims)."""

    number: int = Field(ge=1, le=40)
    supported: bool


class JudgeDraft(_Draft):
    correctness: Score
    comprehensiveness: Score
    readability: Score
    #: Does the lesson teach towards its outcomes (the judge's first question)?
    teaches_outcomes: bool = True
    #: Concrete problems, most serious first (factual errors, gaps, unclear passages).
    reasons: list[Short] = Field(default_factory=list, max_length=5)
    exercises: list[ExerciseCheck] = Field(default_factory=list, max_length=6)
    claims: list[ClaimCheck] = Field(default_factory=list, max_length=12)


def composite(draft: JudgeDraft) -> float:
    """0.6 correctness + 0.2 comprehensiveness + 0.2 readability, on 1-5."""
    return round(
        WEIGHTS["correctness"] * draft.correctness
        + WEIGHTS["comprehensiveness"] * draft.comprehensiveness
        + WEIGHTS["readability"] * draft.readability,
        3,
    )


def in_sample(key: str, rate: float) -> bool:
    """Deterministic calibration sample: the same lesson is always in or out (replayable runs,
    reproducible reports), and about `rate` of all keys are in."""
    if rate <= 0:
        return False
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


Verdict = Literal["pass", "fail", "severe"]


class JudgeGate(Gate[object]):
    """Composite >= `pass_composite`, correctness >= `min_correctness`, the lesson teaches its
    outcomes and every judged answer key is right. Score: the composite.

    Severe (escalate at once) when the composite is below 3.0: a poor lesson goes to the next
    tier immediately."""

    name = "judge"
    advice = "Fix the errors the reviewer found."

    def __init__(
        self,
        pass_composite: float = 3.5,
        min_correctness: int = 3,
        floors: Mapping[Any, float] | None = None,
    ) -> None:
        """`floors`: per-dimension minimums as shares of 5 (correctness 0.80 -> 4/5,
        comprehensiveness and readability 0.70 -> 3.5/5, so 4 on the judge's integer scale)."""
        self.pass_composite = pass_composite
        self.min_correctness = min_correctness
        self.floors = dict(floors or {})

    def check(self, artifact: object, context: GateContext) -> GateResult:
        draft = context.values.get("judge")
        if not isinstance(draft, JudgeDraft):
            raise ValueError("JudgeGate needs context.values['judge'] (a JudgeDraft)")
        score = composite(draft)
        reasons: list[str] = []
        if score < self.pass_composite:
            reasons.append(
                f"judge composite {score:.2f} < {self.pass_composite:.2f} "
                f"(correctness {draft.correctness}, comprehensiveness {draft.comprehensiveness}, "
                f"readability {draft.readability})"
            )
        elif draft.correctness < self.min_correctness:
            reasons.append(f"judge correctness {draft.correctness} < {self.min_correctness}")
        for dimension, floor in self.floors.items():
            value = getattr(draft, dimension)
            if value / 5 < floor:
                reasons.append(
                    f"judge {dimension} {value}/5 below its floor {floor:.2f} (every dimension must clear its own)"
                )
        if not draft.teaches_outcomes:
            reasons.append("judge: the lesson does not teach towards its outcomes")
        for ex in draft.exercises:
            if not ex.answer_correct:
                detail = f": {ex.problem}" if ex.problem else ""
                reasons.append(f"exercise {ex.number}: answer key judged wrong{detail}")
        if reasons and draft.reasons:
            reasons.append("judge notes: " + "; ".join(draft.reasons[:3]))
        passed = not reasons
        verdict: Verdict = "pass" if passed else ("severe" if score < 3.0 else "fail")
        return self.result(passed, score, reasons, verdict, threshold=self.pass_composite)
