"""Pre-routing (a score and thresholds) and the cascade (falls back on errors and rejections)."""

from .cascade import WEAKER_FALLBACK, TaskResult, Verdict, run_cascade
from .ladder import Attempt, Policy, Step, next_step, next_tier, tier_rank
from .prerouting import (
    BLOOM_RANK,
    Route,
    TaskProfile,
    complexity_score,
    criticality_score,
    estimate_complexity,
    route_score,
    route_task,
)

__all__ = [
    "BLOOM_RANK",
    "WEAKER_FALLBACK",
    "Attempt",
    "Policy",
    "Route",
    "Step",
    "TaskProfile",
    "TaskResult",
    "Verdict",
    "complexity_score",
    "criticality_score",
    "estimate_complexity",
    "next_step",
    "next_tier",
    "route_score",
    "route_task",
    "run_cascade",
    "tier_rank",
]
