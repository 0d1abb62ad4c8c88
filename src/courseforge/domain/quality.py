"""Per-course quality figures of the report: what the gates saw, in numbers."""

from __future__ import annotations

from pydantic import Field

from ._base import Open

__all__ = ["QualitySummary", "UngroundedClaim"]


class UngroundedClaim(Open):
    lesson_id: str
    claim: str


class QualitySummary(Open):
    similarity_mean: float | None = None
    #: Mean share of a lesson's factual claims its shown sources support, and (apart from it)
    #: mean share backed by a source the lesson cites.
    grounding_support_mean: float | None = None
    citation_coverage_mean: float | None = None
    #: Mean judge composite (0.6 correctness + 0.2 comprehensiveness + 0.2 readability, 1-5).
    composite_mean: float | None = None
    #: Lessons accepted on the first call of their first generation / lessons.
    first_attempt_pass_rate: float | None = None
    #: Lessons whose final tier is above the tier they started on / lessons.
    escalation_rate: float | None = None
    #: Lessons flagged for a person / lessons.
    human_review_rate: float | None = None
    review_flags: int = 0
    judge_calls: int = 0
    #: Lessons in the calibration sample (judged by the judge and the stronger tier).
    judge_sample: int = 0
    judge_vs_gate_disagreements: int = 0
    judge_vs_strong_disagreements: int = 0
    #: Calibration-sample lessons both the judge and the reference judge (premium, another
    #: family than the generator's) answered for, and the share on which their verdicts differ.
    judge_reference_samples: int = 0
    judge_reference_disagreement_rate: float | None = None
    #: Gate name -> lessons whose final verdict failed it.
    gate_failures: dict[str, int] = Field(default_factory=dict)
    ungrounded_claims: list[UngroundedClaim] = Field(default_factory=list)
