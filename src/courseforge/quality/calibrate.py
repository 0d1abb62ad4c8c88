"""Thresholds from labelled examples: a gate is a classifier, so measure it like one.

`derive_thresholds` takes (score, is_good) pairs — for the similarity gate, a lesson's cosine to
its outcomes and whether a person judged it on-topic — and returns the pass threshold (the
lowest score whose "pass" verdicts reach the target precision, best F1 among those), the
severe threshold (the highest score below which nearly everything is bad) and the precision
and recall at both. Scores between them are borderline: the judge decides there.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Calibration", "Metrics", "derive_thresholds", "metrics_at"]


@dataclass(frozen=True, slots=True)
class Metrics:
    """Of the "pass" verdicts (score >= threshold) on `positives` good and `negatives` bad items."""

    threshold: float
    precision: float
    recall: float
    #: Precision and recall of the "fail" verdicts (score < threshold) at finding bad items.
    fail_precision: float
    fail_recall: float

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


@dataclass(frozen=True, slots=True)
class Calibration:
    pass_at: float
    severe_below: float
    at_pass: Metrics
    at_severe: Metrics
    positives: int
    negatives: int

    @property
    def borderline(self) -> tuple[float, float]:
        return (self.severe_below, self.pass_at)


def metrics_at(pairs: Sequence[tuple[float, bool]], threshold: float) -> Metrics:
    tp = sum(1 for s, good in pairs if s >= threshold and good)
    fp = sum(1 for s, good in pairs if s >= threshold and not good)
    fn = sum(1 for s, good in pairs if s < threshold and good)
    tn = sum(1 for s, good in pairs if s < threshold and not good)
    return Metrics(
        threshold=threshold,
        precision=tp / (tp + fp) if tp + fp else 1.0,
        recall=tp / (tp + fn) if tp + fn else 1.0,
        fail_precision=tn / (tn + fn) if tn + fn else 1.0,
        fail_recall=tn / (tn + fp) if tn + fp else 1.0,
    )


def _midpoints(scores: Sequence[float]) -> list[float]:
    values = sorted(set(scores))
    cuts = [(a + b) / 2 for a, b in itertools.pairwise(values)]
    return [values[0] - 1e-6, *cuts, values[-1] + 1e-6]


def derive_thresholds(
    pairs: Sequence[tuple[float, bool]],
    *,
    target_precision: float = 0.9,
    severe_precision: float = 0.98,
    max_false_alarms: float | None = None,
    balanced: bool = False,
) -> Calibration:
    """Pass threshold: best F1 among cut points whose pass-precision >= target (else best F1).
    With `max_false_alarms` (a share of good items the gate may fail, e.g. 0.05) the pass
    threshold is instead the highest cut point that fails at most that share of good items —
    catching as many bad ones as that allows (the precision target is then reported, not
    enforced). With `balanced`, the pass threshold is the cut that best separates the two
    classes: the highest Youden's J (share of good items passing minus share of bad items
    passing), the lowest such cut on a tie — the midpoint of the widest gap when they do not
    overlap; it does not hug the good items' tail, so it travels better to a new kind of text
    (outside set, leave one source out: docs/quality.md). Severe threshold: the highest cut point <= pass_at below which the share of bad
    items is >= `severe_precision` (so escalating at once there is almost always right)."""
    positives = sum(1 for _, good in pairs if good)
    negatives = len(pairs) - positives
    if not positives or not negatives:
        raise ValueError("calibration needs both good and bad examples")
    if max_false_alarms is not None and not 0 <= max_false_alarms < 1:
        raise ValueError("max_false_alarms must be in [0, 1)")
    cuts = _midpoints([s for s, _ in pairs])
    candidates = [metrics_at(pairs, t) for t in cuts]
    if balanced:
        at_pass = max(candidates, key=lambda m: (round(m.recall + m.fail_recall - 1, 9), -m.threshold))
    elif max_false_alarms is not None:
        allowed = [m for m in candidates if 1 - m.recall <= max_false_alarms + 1e-12]
        at_pass = max(allowed, key=lambda m: m.threshold)
    else:
        precise = [m for m in candidates if m.precision >= target_precision and m.recall > 0]
        at_pass = max(precise or candidates, key=lambda m: (round(m.f1, 9), -m.threshold))
    severe = [
        m for m in candidates if m.threshold <= at_pass.threshold and m.fail_precision >= severe_precision
    ]
    at_severe = max(severe, key=lambda m: m.threshold) if severe else metrics_at(pairs, cuts[0])
    return Calibration(
        pass_at=round(at_pass.threshold, 4),
        severe_below=round(at_severe.threshold, 4),
        at_pass=at_pass,
        at_severe=at_severe,
        positives=positives,
        negatives=negatives,
    )
