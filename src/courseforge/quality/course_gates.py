"""The one list of course gates: what `courseforge check` reports on a whole course and what
generation judges the finished course with (phase 5, `pipeline/completeness.py`).

Each is a `Gate[CourseFacts]`: the facts of a course that both paths can state — its learning
outcomes, how many usable lessons it has against the input's minimum, its sections without a
lesson, the outcomes its lessons teach and its exercises assess, and each section's key concepts
beside its lessons' text. A gate added to
`course_gates` is reported by `courseforge check` and flagged for a person by generation with no
further edit; the gates that generation repairs before it judges (the outcomes, phase 2; coverage
and completeness, phase 5) say so in `REPAIRED`.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from ..config import Settings
from ..domain import LearningOutcome
from .base import Gate, GateContext, GateResult
from .coverage import CompletenessGate, OutcomeCoverageGate, SectionConceptsGate, SectionLessons
from .gates import OutcomesGate

__all__ = ["REPAIRED", "CourseFacts", "CourseOutcomesGate", "course_gates", "run_course_gates"]

#: Course gates generation repairs in its phases rather than only flags: the outcomes (phase 2
#: retries the metadata), outcome coverage and completeness (phase 5's rounds and gap lessons).
REPAIRED = frozenset({"outcomes", "outcome_coverage", "completeness"})


@dataclass(frozen=True, slots=True)
class CourseFacts:
    """A course as the course gates see it (`context()` is what each reads besides it)."""

    outcomes: Sequence[LearningOutcome]
    lessons: int
    min_lessons: int
    empty_sections: Sequence[str]
    #: Outcome ids some lesson teaches, and some exercise assesses.
    taught: Collection[str]
    assessed: Collection[str]
    #: Each section's key concepts (from the input) and its usable lessons' markdown.
    sections: Sequence[SectionLessons] = ()

    def context(self) -> GateContext:
        return GateContext(
            outcomes={o.id: o.text for o in self.outcomes},
            values={
                "taught": self.taught,
                "assessed": self.assessed,
                "lessons": self.lessons,
                "min_lessons": self.min_lessons,
                "empty_sections": self.empty_sections,
            },
        )


class CourseOutcomesGate(Gate[CourseFacts]):
    """The course's learning outcomes well-formed (`gates.OutcomesGate` on them)."""

    name = OutcomesGate.name
    advice = OutcomesGate.advice

    def check(self, artifact: CourseFacts, context: GateContext) -> GateResult:
        return OutcomesGate().check(artifact.outcomes, context)


def course_gates(settings: Settings) -> list[Gate[CourseFacts]]:
    """Every course gate, in the order the report lists them."""
    return [
        CourseOutcomesGate(),
        OutcomeCoverageGate(settings.gates.outcome_coverage),
        CompletenessGate(),
        SectionConceptsGate(settings.gates.section_concepts),
    ]


def run_course_gates(facts: CourseFacts, settings: Settings) -> list[GateResult]:
    context = facts.context()
    return [gate.check(facts, context) for gate in course_gates(settings)]
