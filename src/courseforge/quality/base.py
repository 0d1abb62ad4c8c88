"""The gate interface: `check(artifact, context) -> GateResult`.

A gate is a pure verdict on one artifact (a lesson, the metadata, a whole course) given the
context it is judged in. Gates never call models themselves; anything they need (embeddings,
a judge's verdict) is computed before and handed in through `GateContext`, so the same gate
runs in the pipeline, in `courseforge check` and in tests without a network.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

__all__ = ["Gate", "GateContext", "GateResult", "advice_for", "uncertainty"]

A = TypeVar("A")


@dataclass(frozen=True, slots=True)
class GateResult:
    gate: str
    passed: bool
    #: Gate-specific score (similarity, ratio, count); None when the gate is binary.
    score: float | None = None
    reasons: Sequence[str] = ()
    #: "pass" | "borderline" | "fail" | "severe": severe failures escalate at once.
    verdict: str = ""
    #: What `score` is compared with (None for a gate whose verdict is a rule, not a number).
    threshold: float | None = None
    #: What the next attempt should do about a failure (the gate's own `Gate.advice`).
    advice: str = ""

    def feedback(self) -> str:
        """Short text the next attempt's prompt carries."""
        return "; ".join(self.reasons)

    def margin(self) -> float | None:
        """How far the score sat from its threshold, relative to the threshold: 0 on the line,
        0.1 a tenth of the way (similarity 0.50 against 0.55 is 0.09). None without a number."""
        if self.score is None or self.threshold is None:
            return None
        return abs(self.score - self.threshold) / max(abs(self.threshold), _MIN_SCALE)


#: Smallest scale a margin is measured against (a threshold of 0 would divide by zero).
_MIN_SCALE = 0.05


def uncertainty(results: Sequence[GateResult]) -> float:
    """How close the failed gates came to passing: 1 - the largest margin among them (capped
    at 1), so one clear failure makes the verdict clear; a failure by rule (no number) is
    clear-cut (0). 0 when nothing failed. The review queue is ranked by this."""
    failed = [r for r in results if not r.passed]
    if not failed:
        return 0.0
    clearest = max(min(1.0, m) if (m := r.margin()) is not None else 1.0 for r in failed)
    return round(1.0 - clearest, 4)


@dataclass(frozen=True, slots=True)
class GateContext:
    """What a gate may look at besides the artifact."""

    #: Outcome id -> outcome text, for the outcomes this artifact must serve.
    outcomes: Mapping[str, str] = field(default_factory=dict)
    #: Precomputed values keyed by name (e.g. "similarity": 0.61).
    values: Mapping[str, Any] = field(default_factory=dict)


#: Each gate class's advice by its name, filled as the classes are defined (`advice_for`).
_ADVICE_OF: dict[str, str] = {}


def advice_for(result: GateResult) -> str:
    """What the next attempt should do about `result`: its own advice, else that of the gate
    class of its name (a result made by name, without its gate)."""
    return result.advice or _ADVICE_OF.get(result.gate, "")


class Gate(abc.ABC, Generic[A]):
    """One gate: its `name` (the report's, the review flag's), its `advice` (what the next
    attempt's prompt is told after a failure, `gates.feedback_text`) and its `check`."""

    name: str = ""
    advice: str = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.name and cls.advice:
            _ADVICE_OF.setdefault(cls.name, cls.advice)

    @abc.abstractmethod
    def check(self, artifact: A, context: GateContext) -> GateResult:
        """Judge one artifact."""

    def result(
        self,
        passed: bool,
        score: float | None = None,
        reasons: Sequence[str] = (),
        verdict: str = "",
        *,
        threshold: float | None = None,
    ) -> GateResult:
        """This gate's verdict, carrying its name and advice."""
        return GateResult(self.name, passed, score, reasons, verdict, threshold, self.advice)
