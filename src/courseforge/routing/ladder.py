"""The attempt ladder: standard prompt -> same tier with the validation feedback -> next tier
-> flag for human review; schema failures and very low scores escalate at once (a retry on the
same model rarely mends them); provider failures fall back to another tier. A pure function of the attempt
history, so it is tested with tables and logged with its inputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = ["Attempt", "AttemptKind", "Policy", "Step", "StepAction", "next_step", "next_tier", "tier_rank"]

AttemptKind = Literal["ok", "schema", "gate", "provider", "budget"]
StepAction = Literal["accept", "retry", "escalate", "fallback", "flag", "fail"]


@dataclass(frozen=True, slots=True)
class Attempt:
    tier: str
    kind: AttemptKind
    #: A gate said the answer is far off (e.g. similarity below the severe bound).
    severe: bool = False
    score: float | None = None


@dataclass(frozen=True, slots=True)
class Policy:
    ladder: tuple[str, ...]
    max_attempts: int = 3
    #: Attempts on one tier before moving up.
    per_tier_attempts: int = 2
    #: May the task climb above the tier it started on?
    escalate: bool = True
    #: Highest tier allowed now (budget step-down), or None.
    ceiling: str | None = None
    #: A severe gate failure (similarity below the severe bound) climbs straight to the highest
    #: tier allowed instead of one tier: a severe failure needs the best model available.
    severe_to_top: bool = False
    #: A budget-blocked attempt with nothing usable yet steps down to a cheaper tier that may
    #: still fit (a lesson pre-routed to premium late in a course), instead of failing the task.
    #: Off for metadata: its premium core is never moved to a cheaper tier.
    step_down_on_budget: bool = False


@dataclass(frozen=True, slots=True)
class Step:
    action: StepAction
    tier: str | None
    reason: str


def tier_rank(ladder: Sequence[str], tier: str) -> int:
    """A tier's place on the ladder; a tier off it (long context) counts as the top: there is
    nothing above it."""
    return ladder.index(tier) if tier in ladder else len(ladder) - 1


def next_tier(ladder: Sequence[str], tier: str) -> str:
    """The tier above `tier` (the top, or a tier off the ladder, stays where it is)."""
    if tier not in ladder:
        return tier
    return ladder[min(ladder.index(tier) + 1, len(ladder) - 1)]


def next_step(history: Sequence[Attempt], policy: Policy, *, has_usable: bool) -> Step:
    """What to do after the last attempt. `has_usable`: some attempt parsed (kept for review)."""
    if not history:
        raise ValueError("next_step needs at least one attempt")
    last = history[-1]
    if last.kind == "ok":
        return Step("accept", last.tier, "gates passed")

    def give_up(why: str) -> Step:
        if has_usable:
            return Step("flag", last.tier, f"{why}; best attempt kept for human review")
        return Step("fail", None, why)

    if last.kind == "budget":
        # Nothing usable yet: a cheaper tier below may still fit what is left of the budget
        # (a task pre-routed to premium late in a course). With a usable attempt, keep it.
        blocked = {a.tier for a in history if a.kind == "budget"}
        here_rank = tier_rank(policy.ladder, last.tier)
        below = [t for t in reversed(policy.ladder[:here_rank]) if t not in blocked]
        if policy.step_down_on_budget and not has_usable and below and len(history) < policy.max_attempts:
            return Step("fallback", below[0], f"budget cap reached on {last.tier}: stepping down")
        return give_up("budget cap reached")
    if len(history) >= policy.max_attempts:
        return give_up(f"{len(history)} attempts used (max {policy.max_attempts})")

    ladder = policy.ladder
    top = len(ladder) - 1
    if policy.ceiling is not None and policy.ceiling in ladder:
        top = min(top, ladder.index(policy.ceiling))
    if not policy.escalate:
        top = min(top, tier_rank(ladder, history[0].tier))
    here = tier_rank(ladder, last.tier)
    higher = ladder[here + 1] if here + 1 <= top and last.tier in ladder else None
    same_tier = sum(1 for a in history if a.tier == last.tier)

    if last.kind == "provider":
        # Falling back for availability is not escalating for quality: `escalate=False` does
        # not forbid it; only the budget ceiling does.
        reach = len(ladder) - 1
        if policy.ceiling is not None and policy.ceiling in ladder:
            reach = min(reach, ladder.index(policy.ceiling))
        failed = {a.tier for a in history if a.kind == "provider"}
        candidates = [t for t in ladder[here + 1 : reach + 1] if t not in failed]
        candidates += [t for t in reversed(ladder[:here]) if t not in failed]
        if candidates:
            return Step("fallback", candidates[0], f"provider failed on {last.tier}")
        return give_up("every tier's provider failed")

    if last.kind == "schema":
        if higher:
            return Step("escalate", higher, "schema validation failed: escalating at once")
        if same_tier < policy.per_tier_attempts:
            return Step("retry", last.tier, "schema validation failed on the highest tier allowed: retrying")
        return give_up("schema validation kept failing on the highest tier allowed")

    # A gate rejected the answer.
    if last.severe and higher:
        if policy.severe_to_top and last.tier in ladder:
            best = ladder[top]
            return Step("escalate", best, f"very low score {last.score}: straight to the best tier allowed")
        return Step("escalate", higher, f"very low score {last.score}: escalating at once")
    if same_tier < policy.per_tier_attempts:
        return Step("retry", last.tier, f"gate failed (score {last.score}): retrying with feedback")
    if higher:
        return Step("escalate", higher, f"gate failed {same_tier}x on {last.tier}")
    return give_up(f"gate failed {same_tier}x on the highest allowed tier {last.tier}")
