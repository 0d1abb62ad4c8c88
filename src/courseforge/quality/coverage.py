"""Course-level outcome coverage: every outcome taught by a lesson and assessed by an exercise.

Seed 000 wants 90 %: a course whose outcomes are mostly served is flagged, not failed, when one
outcome in ten slips; below the bound it needs review.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from .base import Gate, GateContext, GateResult

__all__ = ["CompletenessGate", "OutcomeCoverageGate", "completeness_problems", "outcome_problems"]


def completeness_problems(*, lessons: int, min_lessons: int, empty_sections: Collection[str]) -> list[str]:
    """The structural rules of phase 5: enough lessons, and no section without one."""
    problems = []
    if lessons < min_lessons:
        problems.append(f"{lessons} usable lessons, minimum is {min_lessons}")
    problems += [f"section {title!r} has no lessons" for title in empty_sections]
    return problems


def outcome_problems(ids: Collection[str], taught: Collection[str], assessed: Collection[str]) -> list[str]:
    """Outcomes no lesson teaches, and outcomes no exercise assesses."""
    problems = []
    if missing := [i for i in ids if i not in taught]:
        problems.append(f"outcomes taught by no lesson: {', '.join(missing)}")
    if missing := [i for i in ids if i not in assessed]:
        problems.append(f"outcomes assessed by no exercise: {', '.join(missing)}")
    return problems


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
            return self.result(False, 0.0, ["the course has no learning outcomes"], "fail")
        served = [i for i in ids if i in taught and i in assessed]
        share = len(served) / len(ids)
        reasons = outcome_problems(ids, taught, assessed)
        passed = share >= self.min_share
        if not passed:
            reasons.insert(0, f"outcome coverage {share:.0%} < {self.min_share:.0%}")
        return GateResult(
            self.name,
            passed,
            round(share, 4),
            reasons,
            "pass" if passed else "fail",
            threshold=self.min_share,
        )


class CompletenessGate(Gate[Any]):
    """The structural rules of phase 5 (`completeness_problems`): reads `values["lessons"]`,
    `values["min_lessons"]` and `values["empty_sections"]`; its score is the lesson count."""

    name = "completeness"

    def check(self, artifact: Any, context: GateContext) -> GateResult:
        lessons = int(context.values.get("lessons", 0))
        problems = completeness_problems(
            lessons=lessons,
            min_lessons=int(context.values.get("min_lessons", 0)),
            empty_sections=context.values.get("empty_sections", ()),
        )
        return self.result(not problems, float(lessons), problems)
