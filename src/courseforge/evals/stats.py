"""The numbers of an eval: percentiles and seeded bootstrap confidence intervals (numpy).

Differences are paired by input: each input's figure is the mean over its repeats, and the
bootstrap resamples inputs (the unit an eval set is drawn from), so two configs are compared on
the same courses. A figure missing on one side (a failed run has no similarity) drops that
input from that figure's comparison.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Interval", "bootstrap_mean", "paired_difference", "percentile"]

#: Bootstrap resamples; 2000 keeps the 2.5/97.5 % ends stable to ~1 % of the interval.
RESAMPLES = 2000


@dataclass(frozen=True, slots=True)
class Interval:
    value: float
    low: float
    high: float
    #: How many units (inputs, or runs) it was computed from.
    n: int

    def as_dict(self) -> dict[str, float | int]:
        return {"value": _r(self.value), "low": _r(self.low), "high": _r(self.high), "n": self.n}


def _r(x: float) -> float:
    return round(float(x), 6)


def percentile(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(np.asarray(values, dtype=float), q)) if values else None


def bootstrap_mean(values: Sequence[float], *, seed: int = 0, resamples: int = RESAMPLES) -> Interval | None:
    """The mean of `values` with its 95 % bootstrap interval (percentile method)."""
    if not values:
        return None
    data = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, len(data), size=(resamples, len(data)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return Interval(float(data.mean()), float(low), float(high), len(data))


def paired_difference(
    a: Mapping[str, float],
    b: Mapping[str, float],
    *,
    ratio: bool = False,
    seed: int = 0,
    resamples: int = RESAMPLES,
) -> Interval | None:
    """mean(b) - mean(a) over the inputs both have (or mean(b) / mean(a) with `ratio`), with
    its 95 % paired-bootstrap interval; None with no common input (or a zero mean for a ratio)."""
    keys = sorted(set(a) & set(b))
    if not keys:
        return None
    xa = np.asarray([a[k] for k in keys], dtype=float)
    xb = np.asarray([b[k] for k in keys], dtype=float)
    idx = np.random.default_rng(seed).integers(0, len(keys), size=(resamples, len(keys)))
    ma, mb = xa[idx].mean(axis=1), xb[idx].mean(axis=1)
    if ratio:
        if xa.mean() == 0 or np.any(ma == 0):
            return None
        point, stats = xb.mean() / xa.mean(), mb / ma
    else:
        point, stats = xb.mean() - xa.mean(), mb - ma
    low, high = np.percentile(stats, [2.5, 97.5])
    return Interval(float(point), float(low), float(high), len(keys))
