"""Bootstrap intervals: seeded (the same figures every run), paired by input, honest about
spread, and None where there is nothing to compare."""

from __future__ import annotations

import numpy as np
import pytest

from courseforge.evals import bootstrap_mean, paired_difference, percentile


def test_bootstrap_mean_is_seeded_and_brackets_the_mean() -> None:
    values = [1.0, 2.0, 3.0, 4.0, 10.0]
    a, b = bootstrap_mean(values, seed=3), bootstrap_mean(values, seed=3)
    assert a == b and a is not None
    assert a.value == pytest.approx(4.0)
    assert a.low < 4.0 < a.high and a.n == 5
    assert bootstrap_mean([], seed=0) is None
    assert bootstrap_mean([2.0, 2.0], seed=0) == bootstrap_mean([2.0, 2.0], seed=1)  # no spread, no width


def test_paired_difference_and_ratio() -> None:
    a = {"x": 1.0, "y": 2.0, "z": 4.0}
    b = {k: 2 * v for k, v in a.items()}
    ratio = paired_difference(a, b, ratio=True)
    assert ratio is not None and ratio.value == pytest.approx(2.0)
    assert ratio.low == pytest.approx(2.0) and ratio.high == pytest.approx(2.0)  # every pair doubles
    diff = paired_difference(a, b)
    assert diff is not None and diff.value == pytest.approx(7 / 3) and diff.low <= diff.value <= diff.high
    assert paired_difference(a, {"other": 1.0}) is None
    assert paired_difference({"x": 0.0}, {"x": 1.0}, ratio=True) is None


def test_pairing_removes_the_spread_between_inputs() -> None:
    rng = np.random.default_rng(0)
    base = {f"i{k}": float(v) for k, v in enumerate(rng.uniform(1, 100, 30))}
    shifted = {k: v + 1.0 + float(rng.normal(0, 0.1)) for k, v in base.items()}
    diff = paired_difference(base, shifted, seed=0)
    assert diff is not None and 0.9 < diff.low < diff.high < 1.1  # inputs vary 1-100; the shift is clear


def test_percentile() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == pytest.approx(2.5)
    assert percentile([], 95) is None
