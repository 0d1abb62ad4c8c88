"""The one list of metadata gates: what phase 2 judges the critical metadata (outcomes,
strategy, structure, taxonomy) with before it plans the lessons (`gates.metadata`).

Each is a `Gate[MetadataFacts]`: the facts of one metadata draft that phase 2 measures first
(`pipeline/metadata.py: metadata_quality` embeds the texts; the gates never do) — the share of
each structural check of the plan met, and two cosines. A gate added to `metadata_gates` is
reported in `summary.metadata_gates` and sends the metadata back with its reasons and advice
with no further edit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..config import Settings
from .base import Gate, GateContext, GateResult

__all__ = [
    "MetadataAlignmentGate",
    "MetadataCoherenceGate",
    "MetadataCompletenessGate",
    "MetadataFacts",
    "metadata_gates",
    "run_metadata_gates",
]


@dataclass(frozen=True, slots=True)
class MetadataFacts:
    """One metadata draft as the metadata gates see it."""

    #: Each structural check of the plan: (share met, what falls short when under 1) — sections
    #: planned, key concepts planned, outcomes with a measurable verb, outcomes placed on a lesson.
    checks: Sequence[tuple[float, str]]
    #: Cosine of title + description + strategy to the outcomes and section titles.
    coherence: float
    #: Cosine of the outcomes' mean vector to the analysis' goals, topic and audience.
    alignment: float


class MetadataCompletenessGate(Gate[MetadataFacts]):
    """The mean share of the plan's checks met >= `min_share`; a failure names each check
    that fell short."""

    name = "metadata_completeness"
    advice = (
        "plan every section, name each key concept in an outcome, lesson title or summary, open "
        "every outcome with a measurable verb and place every outcome on at least one lesson"
    )

    def __init__(self, min_share: float) -> None:
        self.min_share = min_share

    def check(self, artifact: MetadataFacts, context: GateContext) -> GateResult:
        checks = artifact.checks
        score = round(sum(share for share, _ in checks) / len(checks), 4) if checks else 1.0
        passed = score >= self.min_share
        reasons = [] if passed else [why for share, why in checks if share < 1]
        return self.result(passed, score, reasons, threshold=self.min_share)


class _CosineGate(Gate[MetadataFacts]):
    """A cosine of the facts >= `pass_at` (per embedding model, calibrated in docs/quality.md);
    a failure says what `failure` names, with the cosine and the bar."""

    failure = ""

    def __init__(self, pass_at: float) -> None:
        self.pass_at = pass_at

    def cosine(self, facts: MetadataFacts) -> float:
        raise NotImplementedError(type(self).__name__)

    def check(self, artifact: MetadataFacts, context: GateContext) -> GateResult:
        score = round(self.cosine(artifact), 4)
        if score >= self.pass_at:
            return self.result(True, score, threshold=self.pass_at)
        why = f"{self.failure} (cosine {score:.2f} < {self.pass_at:.2f})"
        return self.result(False, score, [why], threshold=self.pass_at)


class MetadataCoherenceGate(_CosineGate):
    """Title, description and strategy about what the outcomes and sections are about."""

    name = "metadata_coherence"
    advice = "write the title, description and strategy about the subject the outcomes and sections teach"
    failure = "title, description and strategy disagree with the outcomes and sections"

    def cosine(self, facts: MetadataFacts) -> float:
        return facts.coherence


class MetadataAlignmentGate(_CosineGate):
    """The outcomes serve the course's goals, topic and audience."""

    name = "metadata_alignment"
    advice = "write outcomes that serve the course's stated goals, topic and audience"
    failure = "outcomes stray from the course's goals, topic and audience"

    def cosine(self, facts: MetadataFacts) -> float:
        return facts.alignment


def metadata_gates(settings: Settings, default_pass_at: float) -> list[Gate[MetadataFacts]]:
    """Every metadata gate, in the order the report lists them. The cosine gates' thresholds
    are the configured embedding model's, else `default_pass_at` (its similarity pass mark)."""
    cfg, model = settings.gates.metadata, settings.gates.embedding_model
    return [
        MetadataCompletenessGate(cfg.completeness),
        MetadataCoherenceGate(cfg.coherence.get(model, default_pass_at)),
        MetadataAlignmentGate(cfg.alignment.get(model, default_pass_at)),
    ]


def run_metadata_gates(facts: MetadataFacts, settings: Settings, default_pass_at: float) -> list[GateResult]:
    context = GateContext()
    return [gate.check(facts, context) for gate in metadata_gates(settings, default_pass_at)]
