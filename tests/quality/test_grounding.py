"""Citation coverage, reported and gated apart from support (seed 000: >= 80 % of claims)."""

from __future__ import annotations

from courseforge.quality.base import GateContext
from courseforge.quality.grounding import CitationCoverageGate, ClaimSupport, GroundingGate


def _claims() -> list[ClaimSupport]:
    return [
        ClaimSupport("Leaves hold chlorophyll.", "supported", 0.9, 0.9, "src-a"),
        ClaimSupport("Light splits water.", "supported", 0.9, 0.9, "src-b"),
        ClaimSupport("Plants breathe oxygen in.", "unsupported", 0.1, 0.0, "src-a"),
    ]


def test_supported_but_uncited_claims_lower_citation_coverage_not_support() -> None:
    claims = _claims()
    support = GroundingGate(0.6).check(None, GateContext(values={"grounding": claims}))
    both = CitationCoverageGate(0.6).check(
        None, GateContext(values={"grounding": claims, "citations": ["src-a", "src-b"]})
    )
    one = CitationCoverageGate(0.6).check(
        None, GateContext(values={"grounding": claims, "citations": ["src-a"]})
    )
    assert support.passed and support.score == round(2 / 3, 4)
    assert both.passed and both.score == round(2 / 3, 4)
    assert not one.passed and one.score == round(1 / 3, 4)
    assert any("uncited src-b" in r for r in one.reasons)


def test_no_claims_pass() -> None:
    assert CitationCoverageGate().check(None, GateContext(values={"grounding": [], "citations": []})).passed
