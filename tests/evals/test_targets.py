"""The seeds' success metrics against an eval's figures (seed 000: tier mix 75/20/5,
first-attempt >= 70 %, retry < 20 %, escalation < 25 %, human review < 3 %, $0.30-0.35)."""

from __future__ import annotations

from typing import Any

import pytest

from courseforge.evals.targets import TARGETS, seed_targets


def summary(**figures: float | None) -> dict[str, Any]:
    mix = figures.pop("mix", None)
    retry = figures.pop("retry", None)
    return {
        "figures": {k: {"mean": v} for k, v in figures.items()},
        "lessons_by_tier": mix if mix is not None else {},
        "retry_rate_mean": retry,
    }


def by_name(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["target"]: r for r in rows}


@pytest.mark.parametrize(
    ("mix", "tier1", "tier2", "tier3", "met"),
    [
        ({"cheap": 40, "mid": 35, "premium": 20, "long_context": 5}, 0.75, 0.20, 0.05, (True, True, True)),
        ({"cheap": 40, "mid": 31, "premium": 29}, 0.71, 0.29, 0.0, (True, False, True)),
        ({"cheap": 40, "mid": 58, "premium": 2}, 0.98, 0.02, 0.0, (False, False, True)),
    ],
)
def test_tier_mix_is_read_off_final_tiers(
    mix: dict[str, int], tier1: float, tier2: float, tier3: float, met: tuple[bool, bool, bool]
) -> None:
    rows = by_name(seed_targets(summary(mix=mix)))
    got = (rows["tier 1 share"], rows["tier 2 share"], rows["tier 3 share"])
    assert [r["actual"] for r in got] == pytest.approx([tier1, tier2, tier3])
    assert tuple(r["met"] for r in got) == met


@pytest.mark.parametrize(
    ("figure", "target", "value", "met"),
    [
        ("first_attempt_pass_rate", "first-attempt pass rate", 0.70, True),
        ("first_attempt_pass_rate", "first-attempt pass rate", 0.69, False),
        ("escalation_rate", "escalation rate", 0.24, True),
        ("escalation_rate", "escalation rate", 0.25, False),
        ("review_rate", "human-review rate", 0.029, True),
        ("review_rate", "human-review rate", 0.116, False),
        ("cost_per_course", "cost per course (USD)", 0.35, True),
        ("cost_per_course", "cost per course (USD)", 0.36, False),
    ],
)
def test_each_rate_target_against_its_goal(figure: str, target: str, value: float, met: bool) -> None:
    row = by_name(seed_targets(summary(**{figure: value})))[target]
    assert (row["actual"], row["met"]) == (value, met)


def test_retry_rate_and_unmeasured_targets() -> None:
    rows = by_name(seed_targets(summary(retry=0.1)))
    assert rows["retry rate"]["met"] is True
    assert rows["first-attempt pass rate"] == {**rows["first-attempt pass rate"], "actual": None, "met": None}
    assert len(rows) == len(TARGETS)
