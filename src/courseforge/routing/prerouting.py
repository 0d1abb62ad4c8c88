"""Pre-routing: scores for how much a task needs a strong model, and thresholds on them.

Like RouteLLM, a router is a score and a threshold. One rule decides the premium tier first:
`complexity_score >= 0.75 or criticality_score >= 0.80 -> premium`, a critical section or a
complex one (input complexity 7-10) starting on the best model; `complexity_score` maps the
input's 1-10 so that 7 lands on 0.75, which makes both statements of the rule one.
Below it a transparent weighted sum (complexity, criticality, the Bloom level of the outcomes,
the section type's bias) splits cheap from mid. Every score goes into the logged decision.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..config import ModelSettings, RoutingSettings, SectionTypeSettings

__all__ = [
    "BLOOM_RANK",
    "Route",
    "TaskProfile",
    "complexity_score",
    "criticality_score",
    "estimate_complexity",
    "route_score",
    "route_task",
]

BLOOM_RANK = {"remember": 1, "understand": 2, "apply": 3, "analyze": 4, "evaluate": 5, "create": 6}
_DIFFICULTY_BONUS = {"beginner": 0, "intermediate": 1, "advanced": 3}

# Weights of the score; they sum to 1 before the section-type bias.
W_COMPLEXITY = 0.55
W_BLOOM = 0.2
W_CRITICAL = 0.25


@dataclass(frozen=True, slots=True)
class TaskProfile:
    task: str
    complexity: int  # 1..10
    critical: bool = False
    section_type: str = "concept"
    bloom_rank: int = 2  # 1..6, highest level among the task's outcomes
    #: Estimated prompt tokens plus the answer's max_tokens.
    context_tokens: int = 0


@dataclass(frozen=True, slots=True)
class Route:
    tier: str
    score: float
    reason: str
    inputs: Mapping[str, Any]


def estimate_complexity(key_concepts: list[str], difficulty: str, guidance: str | None = None) -> int:
    """1..10 from what the analysis gives when it states no complexity."""
    concepts = len(key_concepts)
    long_terms = sum(1 for c in key_concepts if len(c.split()) >= 3)
    raw = 2 + concepts // 2 + long_terms // 2 + _DIFFICULTY_BONUS.get(difficulty, 0)
    if guidance and len(guidance) > 200:
        raw += 1
    return max(1, min(10, raw))


def route_score(profile: TaskProfile, type_settings: SectionTypeSettings | None) -> float:
    score = (
        W_COMPLEXITY * (profile.complexity - 1) / 9
        + W_BLOOM * (profile.bloom_rank - 1) / 5
        + (W_CRITICAL if profile.critical else 0.0)
        + (type_settings.score_bias if type_settings else 0.0)
    )
    return round(max(0.0, min(1.0, score)), 4)


def complexity_score(profile: TaskProfile, type_settings: SectionTypeSettings | None) -> float:
    """`complexity_score` on 0-1: the input's complexity 1-10 as (c - 1) / 8, so the bands
    "1-3 cheap, 4-6 mid, 7-10 premium" meet our thresholds (4 -> 0.375, mid; 7 -> 0.75,
    premium; 10 clamps to 1), plus the section type's bias."""
    raw = (profile.complexity - 1) / 8 + (type_settings.score_bias if type_settings else 0.0)
    return round(max(0.0, min(1.0, raw)), 4)


def criticality_score(profile: TaskProfile) -> float:
    """`criticality_score`: 1 for a section the analysis marks critical (foundational
    to the outcomes), else 0. Section types' priorities are not criticality: they bias scores."""
    return 1.0 if profile.critical else 0.0


def route_task(profile: TaskProfile, routing: RoutingSettings, models: Mapping[str, ModelSettings]) -> Route:
    """The starting tier for a task. Pure: same inputs, same route."""
    type_settings = routing.section_types.get(profile.section_type)
    score = route_score(profile, type_settings)
    complexity = complexity_score(profile, type_settings)
    criticality = criticality_score(profile)
    inputs: dict[str, Any] = {
        "complexity": profile.complexity,
        "critical": profile.critical,
        "section_type": profile.section_type,
        "bloom_rank": profile.bloom_rank,
        "context_tokens": profile.context_tokens,
        "score": score,
        "complexity_score": complexity,
        "criticality_score": criticality,
    }
    ladder = routing.ladder
    if type_settings and type_settings.start_tier and not profile.critical:
        tier, reason = type_settings.start_tier, f"section type {profile.section_type!r} starts on it"
    elif criticality >= routing.premium_criticality:
        tier = ladder[-1]
        reason = f"criticality_score {criticality} >= {routing.premium_criticality}: a critical lesson starts on the top tier"
    elif complexity >= routing.premium_complexity:
        tier = ladder[-1]
        reason = f"complexity_score {complexity} >= {routing.premium_complexity}: a complex lesson starts on the top tier"
    elif score >= routing.threshold_premium:
        tier, reason = ladder[-1], f"score {score} >= premium threshold {routing.threshold_premium}"
    elif score >= routing.threshold_mid and len(ladder) > 1:
        tier = ladder[1] if len(ladder) > 2 else ladder[-1]
        reason = f"score {score} >= mid threshold {routing.threshold_mid}"
    else:
        tier, reason = ladder[0], f"score {score} below mid threshold {routing.threshold_mid}"
    window = models[routing.tiers[tier]].context_window
    if profile.context_tokens > window:
        long_tier = routing.long_context_tier
        if long_tier and long_tier in routing.tiers:
            long_window = models[routing.tiers[long_tier]].context_window
            inputs["context_window"] = window
            return Route(
                long_tier,
                score,
                f"context {profile.context_tokens} tokens > {window} of {tier}; long-context tier "
                f"holds {long_window}",
                inputs,
            )
    return Route(tier, score, reason, inputs)
