"""Pre-routing as tables, on the bundled hosted profile's routing settings."""

from __future__ import annotations

import pytest

from courseforge.config import SectionTypeSettings
from courseforge.routing import (
    TaskProfile,
    complexity_score,
    criticality_score,
    estimate_complexity,
    route_score,
    route_task,
)
from engine_helpers import hosted_settings

SETTINGS = hosted_settings()
ROUTING = SETTINGS.routing
MODELS = SETTINGS.models


def profile(**kw: object) -> TaskProfile:
    base: dict[str, object] = {"task": "lesson:S1-L1", "complexity": 5, "section_type": "concept"}
    base.update(kw)
    return TaskProfile(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kw", "tier", "reason_part"),
    [
        pytest.param({"complexity": 1, "bloom_rank": 1}, "cheap", "below mid threshold", id="easy->cheap"),
        pytest.param({"complexity": 5, "bloom_rank": 2}, "cheap", "below mid", id="score .28 -> cheap"),
        pytest.param({"complexity": 6, "bloom_rank": 2}, "mid", "mid threshold", id="score .35 -> mid"),
        pytest.param({"complexity": 10, "bloom_rank": 6}, "premium", "complexity_score", id="max -> premium"),
        pytest.param(
            {"complexity": 8, "bloom_rank": 4, "critical": True},
            "premium",
            "criticality_score",
            id="critical pushes up",
        ),
        pytest.param(
            {"complexity": 10, "bloom_rank": 6, "section_type": "warmup"},
            "cheap",
            "section type 'warmup'",
            id="warmup start_tier wins over score",
        ),
        pytest.param(
            {"complexity": 1, "section_type": "vocabulary"},
            "cheap",
            "section type",
            id="vocabulary start_tier",
        ),
        pytest.param(
            {"complexity": 10, "bloom_rank": 6, "section_type": "warmup", "critical": True},
            "premium",
            "criticality_score",
            id="critical overrides start_tier",
        ),
        pytest.param(
            {"complexity": 6, "bloom_rank": 2, "section_type": "practice"},
            "cheap",
            "below mid",
            id="practice bias -0.1 keeps it cheap",
        ),
        pytest.param(
            {"complexity": 4, "bloom_rank": 2, "section_type": "grammar"},
            "mid",
            "mid threshold",
            id="grammar bias +0.1 lifts to mid",
        ),
        pytest.param(
            {"complexity": 6, "bloom_rank": 2, "section_type": "never-configured"},
            "mid",
            "mid threshold",
            id="unknown section type uses the score",
        ),
    ],
)
def test_route_task_table(kw: dict[str, object], tier: str, reason_part: str) -> None:
    route = route_task(profile(**kw), ROUTING, MODELS)
    assert route.tier == tier, route.reason
    assert reason_part in route.reason
    assert route.inputs["score"] == route.score
    assert route.inputs["section_type"] == kw.get("section_type", "concept")


# Seed 000: "complexity_score >= 0.75 or criticality_score >= 0.80 -> premium"; seed 001:
# complexity 7-10 -> qwen3-max. Before this rule a critical lesson of complexity <= 7 started on
# mid, and a non-critical complexity-10 lesson needed Bloom level 6 to reach premium.
@pytest.mark.parametrize(
    ("kw", "tier"),
    [
        pytest.param(
            {"complexity": 8, "bloom_rank": 1}, "premium", id="complexity 8 (hosted bar) -> premium"
        ),
        pytest.param({"complexity": 7, "bloom_rank": 1}, "mid", id="complexity 7 on mid (calibrated bar)"),
        pytest.param({"complexity": 10, "bloom_rank": 1}, "premium", id="complexity 10, Bloom 1 -> premium"),
        pytest.param({"complexity": 6, "bloom_rank": 6}, "mid", id="complexity 6 stays below"),
        pytest.param({"complexity": 1, "bloom_rank": 1, "critical": True}, "premium", id="critical, easy"),
        pytest.param({"complexity": 5, "bloom_rank": 2, "critical": True}, "premium", id="critical, 5"),
        pytest.param(
            {"complexity": 8, "bloom_rank": 2, "section_type": "practice"}, "mid", id="practice bias -0.1"
        ),
        pytest.param(
            {"complexity": 6, "bloom_rank": 2, "section_type": "reading"}, "mid", id="reading 6 + 0.1 = .725"
        ),
        pytest.param(
            {"complexity": 10, "section_type": "warmup"}, "cheap", id="non-critical start_tier still wins"
        ),
    ],
)
def test_seed_premium_rule(kw: dict[str, object], tier: str) -> None:
    route = route_task(profile(**kw), ROUTING, MODELS)
    assert route.tier == tier, route.reason
    assert set(route.inputs) >= {"complexity_score", "criticality_score", "score"}


@pytest.mark.parametrize(
    ("complexity", "expected"), [(1, 0.0), (4, 0.375), (7, 0.75), (8, 0.875), (9, 1.0), (10, 1.0)]
)
def test_complexity_score_scale(complexity: int, expected: float) -> None:
    assert complexity_score(profile(complexity=complexity), None) == pytest.approx(expected)
    assert criticality_score(profile(critical=True)) == 1.0
    assert criticality_score(profile()) == 0.0


def test_hosted_complexity_bar_is_calibrated_to_the_seed_tier_mix() -> None:
    # Seed 000 asks the bar be calibrated on validation data toward 15-25 % tier 2; the eval set
    # put it at complexity 8 (0.875). Seed 001's "7-10 -> qwen3-max" is the settings default.
    assert ROUTING.premium_complexity == 0.875
    assert type(ROUTING).model_fields["premium_complexity"].default == 0.75
    seed_001 = ROUTING.model_copy(update={"premium_complexity": 0.75})
    assert route_task(profile(complexity=7, bloom_rank=1), seed_001, MODELS).tier == "premium"
    assert route_task(profile(complexity=7, bloom_rank=1), ROUTING, MODELS).tier == "mid"


def test_seed_thresholds_are_configurable() -> None:
    off = ROUTING.model_copy(update={"premium_complexity": 1.01, "premium_criticality": 1.01})
    assert route_task(profile(complexity=7, bloom_rank=1), off, MODELS).tier == "mid"
    assert route_task(profile(complexity=1, bloom_rank=1, critical=True), off, MODELS).tier == "cheap"
    at = ROUTING.model_copy(update={"premium_complexity": 0.625})
    assert route_task(profile(complexity=6, bloom_rank=1), at, MODELS).tier == "premium"


def test_thresholds_are_inclusive() -> None:
    p = profile(complexity=6, bloom_rank=2)
    score = route_score(p, ROUTING.section_types.get("concept"))
    at_mid = ROUTING.model_copy(update={"threshold_mid": score})
    above = ROUTING.model_copy(update={"threshold_mid": score + 0.0001})
    assert route_task(p, at_mid, MODELS).tier == "mid"
    assert route_task(p, above, MODELS).tier == "cheap"
    at_premium = ROUTING.model_copy(update={"threshold_premium": score})
    assert route_task(p, at_premium, MODELS).tier == "premium"


def test_two_tier_ladder_mid_means_the_top() -> None:
    two = ROUTING.model_copy(update={"ladder": ["cheap", "premium"]})
    assert route_task(profile(complexity=6, bloom_rank=2), two, MODELS).tier == "premium"
    one = ROUTING.model_copy(update={"ladder": ["cheap"]})
    assert route_task(profile(complexity=6, bloom_rank=2), one, MODELS).tier == "cheap"


@pytest.mark.parametrize(
    ("kw", "score"),
    [
        ({"complexity": 1, "bloom_rank": 1}, 0.0),
        ({"complexity": 10, "bloom_rank": 6}, 0.75),
        ({"complexity": 10, "bloom_rank": 6, "critical": True}, 1.0),  # clamped
        ({"complexity": 1, "bloom_rank": 1, "critical": True}, 0.25),
        ({"complexity": 10, "bloom_rank": 1}, 0.55),
        ({"complexity": 1, "bloom_rank": 6}, 0.2),
    ],
)
def test_route_score_table(kw: dict[str, object], score: float) -> None:
    assert route_score(profile(**kw), None) == pytest.approx(score)


def test_route_score_bias_and_clamp() -> None:
    p = profile(complexity=1, bloom_rank=1)
    assert route_score(p, SectionTypeSettings(score_bias=0.3)) == pytest.approx(0.3)
    assert route_score(p, SectionTypeSettings(score_bias=-0.5)) == 0.0


def test_context_overflow_goes_to_long_context_tier() -> None:
    cheap_window = MODELS[ROUTING.tiers["cheap"]].context_window
    route = route_task(profile(complexity=1, context_tokens=cheap_window + 1), ROUTING, MODELS)
    assert route.tier == "long_context"
    assert route.inputs["context_window"] == cheap_window
    assert str(cheap_window + 1) in route.reason


def test_context_within_window_stays() -> None:
    cheap_window = MODELS[ROUTING.tiers["cheap"]].context_window
    route = route_task(profile(complexity=1, context_tokens=cheap_window), ROUTING, MODELS)
    assert route.tier == "cheap"
    assert "context_window" not in route.inputs


def test_overflow_without_long_tier_stays_on_chosen_tier() -> None:
    no_long = ROUTING.model_copy(update={"long_context_tier": None})
    route = route_task(profile(complexity=1, context_tokens=10**7), no_long, MODELS)
    assert route.tier == "cheap"
    undefined = ROUTING.model_copy(update={"long_context_tier": "nonexistent"})
    assert route_task(profile(complexity=1, context_tokens=10**7), undefined, MODELS).tier == "cheap"


def test_route_is_pure() -> None:
    p = profile(complexity=7, bloom_rank=3, critical=True, context_tokens=2000)
    assert route_task(p, ROUTING, MODELS) == route_task(p, ROUTING, MODELS)


@pytest.mark.parametrize(
    ("concepts", "difficulty", "guidance", "expected"),
    [
        (["a"], "beginner", None, 2),
        (["a", "b"], "beginner", None, 3),
        (["a", "b", "c", "d"], "beginner", None, 4),
        (["a", "b"], "intermediate", None, 4),
        (["a", "b"], "advanced", None, 6),
        (["one two three", "four five six"], "beginner", None, 4),  # two long terms add 1
        (["a"], "beginner", "x" * 201, 3),
        (["a"], "beginner", "x" * 200, 2),
        ([f"c{i}" for i in range(30)], "advanced", None, 10),  # clamped
        (["a"], "unknown-level", None, 2),
    ],
)
def test_estimate_complexity(
    concepts: list[str], difficulty: str, guidance: str | None, expected: int
) -> None:
    assert estimate_complexity(concepts, difficulty, guidance) == expected
