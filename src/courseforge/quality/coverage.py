"""Course-level outcome coverage: every outcome taught by a lesson and assessed by an exercise.

Seed 000 wants 90 %: a course whose outcomes are mostly served is flagged, not failed, when one
outcome in ten slips; below the bound it needs review.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from .base import Gate, GateContext, GateResult

__all__ = ["OutcomeCoverageGate"]


class OutcomeCoverageGate(Gate[Any]):
    """Share of outcomes both taught and assessed >= `min_share`. Reads `values["taught"]` and
    `values["assessed"]` (outcome ids) and the outcome ids from `context.outcomes`."""

    name = "outcome_coverage"

    def __init__(self, min_share: float = 0.9) -> None:
        self.min_share = min_share

    def check(self, artifact: Any, context: GateContext) -> GateResult:
        ids = list(context.outcomes)
        taught: Collection[str] = context.values.get("taught", ())
        assessed: Collection[str] = context.values.get("assessed", ())
        if not ids:
            return GateResult(self.name, False, 0.0, ["the course has no learning outcomes"], "fail")
        served = [i for i in ids if i in taught and i in assessed]
        share = len(served) / len(ids)
        reasons = []
        if missing := [i for i in ids if i not in taught]:
            reasons.append(f"outcomes taught by no lesson: {', '.join(missing)}")
        if missing := [i for i in ids if i not in assessed]:
            reasons.append(f"outcomes assessed by no exercise: {', '.join(missing)}")
        passed = share >= self.min_share
        if not passed:
            reasons.insert(0, f"outcome coverage {share:.0%} < {self.min_share:.0%}")
        return GateResult(self.name, passed, round(share, 4), reasons, "pass" if passed else "fail")
