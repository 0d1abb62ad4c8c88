"""The success metrics to track weekly (docs/seed-rules.md) against what an
eval measured: one row per target, its goal, the actual figure and whether it is met.

A target reads a config's summary (`summary.config_summary`): figure means and the lessons'
final-tier mix. The targets' tiers are models, ours are names: tier 1 (OSS 120B, with OSS
20B below it) is our `cheap` + `mid`, tier 2 (qwen3-max) `premium`, tier 3 (Gemini 2.5 Flash,
overflow) `long_context`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["TARGETS", "Target", "seed_targets"]

#: Our tier names in each of the seeds' three tiers.
SEED_TIERS = {"tier 1": ("cheap", "mid"), "tier 2": ("premium",), "tier 3": ("long_context",)}


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    #: The seed's words.
    seed: str
    goal: str
    read: Callable[[Mapping[str, Any]], float | None]
    met: Callable[[float], bool]


def _mean(figure: str) -> Callable[[Mapping[str, Any]], float | None]:
    def read(summary: Mapping[str, Any]) -> float | None:
        value = summary.get("figures", {}).get(figure, {}).get("mean")
        return None if value is None else float(value)

    return read


def _key(key: str) -> Callable[[Mapping[str, Any]], float | None]:
    def read(summary: Mapping[str, Any]) -> float | None:
        value = summary.get(key)
        return None if value is None else float(value)

    return read


def _share(tier: str) -> Callable[[Mapping[str, Any]], float | None]:
    def read(summary: Mapping[str, Any]) -> float | None:
        mix: Mapping[str, int] = summary.get("lessons_by_tier", {})
        total = sum(mix.values())
        if not total:
            return None
        return round(sum(mix.get(t, 0) for t in SEED_TIERS[tier]) / total, 4)

    return read


TARGETS: tuple[Target, ...] = (
    Target("tier 1 share", "000: 75% Tier 1 (OSS 120B); 70-80% of sections", "0.70-0.80",
           _share("tier 1"), lambda v: 0.70 <= v <= 0.80),
    Target("tier 2 share", "000: 20% Tier 2 (qwen3-max); 15-25% of sections", "0.15-0.25",
           _share("tier 2"), lambda v: 0.15 <= v <= 0.25),
    Target("tier 3 share", "000: 5% Tier 3 (Gemini 2.5 Flash, overflow)", "<= 0.05",
           _share("tier 3"), lambda v: v <= 0.05),
    Target("first-attempt pass rate", "000: Phase 3 first-attempt success >= 70%", ">= 0.70",
           _mean("first_attempt_pass_rate"), lambda v: v >= 0.70),
    Target("retry rate", "000: Retry rate < 20% (same-tier retries per lesson)", "< 0.20",
           _key("retry_rate_mean"), lambda v: v < 0.20),
    Target("escalation rate", "000: Escalation rate < 25%", "< 0.25",
           _mean("escalation_rate"), lambda v: v < 0.25),
    Target("human-review rate", "000: Human escalation rate < 3%", "< 0.03",
           _mean("review_rate"), lambda v: v < 0.03),
    Target("cost per course (USD)", "000: $0.30-0.35 average; $0.40 maximum", "<= 0.35",
           _mean("cost_per_course"), lambda v: v <= 0.35),
)  # fmt: skip


def seed_targets(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each target against one config's summary: name, seed, goal, actual (None: not measured
    in this eval) and met (None when not measured)."""
    rows = []
    for t in TARGETS:
        actual = t.read(summary)
        rows.append(
            {
                "target": t.name,
                "seed": t.seed,
                "goal": t.goal,
                "actual": actual,
                "met": None if actual is None else t.met(actual),
            }
        )
    return rows
