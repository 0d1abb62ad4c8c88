"""Calibrating for a false-alarm budget (issue 24): when good and bad scores overlap, a precision
target pushes the pass mark above many good items; a budget of failed good items picks the
highest mark that keeps within it."""

from __future__ import annotations

import pytest

from courseforge.quality.calibrate import derive_thresholds

# 20 good lessons 0.40-0.78, 20 bad 0.00-0.57: they overlap between 0.40 and 0.57.
GOOD = [0.40 + 0.02 * i for i in range(20)]
BAD = [0.03 * i for i in range(20)]
PAIRS = [(s, True) for s in GOOD] + [(s, False) for s in BAD]


def test_a_false_alarm_budget_bounds_the_good_items_failed() -> None:
    cal = derive_thresholds(PAIRS, max_false_alarms=0.05)
    failed_good = sum(1 for s in GOOD if s < cal.pass_at)
    assert failed_good <= 1  # 5 % of 20
    assert failed_good == 1  # the highest mark: failing just the lowest good one
    assert cal.severe_below <= cal.pass_at


def test_the_precision_target_fails_more_good_items_on_overlapping_scores() -> None:
    by_precision = derive_thresholds(PAIRS, target_precision=0.9)
    by_budget = derive_thresholds(PAIRS, max_false_alarms=0.05)
    assert by_precision.pass_at > by_budget.pass_at


def test_a_budget_must_be_a_share() -> None:
    with pytest.raises(ValueError, match="max_false_alarms"):
        derive_thresholds(PAIRS, max_false_alarms=1.0)


def test_balanced_cuts_in_the_middle_of_the_gap_between_separate_classes() -> None:
    # Good 0.50-0.88, bad 0.00-0.18: a budget hugs the good items' tail; balanced takes the
    # midpoint of the gap (0.34), so a new source's slightly lower good items still pass.
    good = [0.50 + 0.02 * i for i in range(20)]
    bad = [0.01 * i for i in range(19)]
    pairs = [(s, True) for s in good] + [(s, False) for s in bad]
    balanced = derive_thresholds(pairs, balanced=True)
    assert balanced.pass_at == pytest.approx(0.34)
    assert balanced.at_pass.recall == 1.0 and balanced.at_pass.fail_recall == 1.0
    assert derive_thresholds(pairs, max_false_alarms=0.05).pass_at > 0.5


def test_balanced_maximises_good_passing_minus_bad_passing_on_overlap() -> None:
    cal = derive_thresholds(PAIRS, balanced=True)
    j = cal.at_pass.recall + cal.at_pass.fail_recall - 1
    for cut in (0.3, 0.45, 0.5, 0.6):
        good = sum(1 for s in GOOD if s >= cut) / len(GOOD)
        bad = sum(1 for s in BAD if s >= cut) / len(BAD)
        assert j >= good - bad - 1e-9
