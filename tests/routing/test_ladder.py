"""The attempt ladder as a table: history + policy -> the next step."""

from __future__ import annotations

import pytest

from courseforge.routing import Attempt, Policy, Step, next_step

LADDER = ("cheap", "mid", "premium")
P = Policy(ladder=LADDER)


def A(tier: str, kind: str, *, severe: bool = False, score: float | None = None) -> Attempt:
    return Attempt(tier, kind, severe=severe, score=score)  # type: ignore[arg-type]


CASES: list[tuple[str, list[Attempt], Policy, bool, str, str | None]] = [
    # id, history, policy, has_usable, expected action, expected tier
    ("accept", [A("cheap", "ok", score=0.9)], P, False, "accept", "cheap"),
    ("accept after failures", [A("cheap", "gate"), A("cheap", "ok")], P, True, "accept", "cheap"),
    ("schema escalates at once", [A("cheap", "schema")], P, False, "escalate", "mid"),
    ("schema on mid escalates to premium", [A("mid", "schema")], P, False, "escalate", "premium"),
    ("schema on top tier retries", [A("premium", "schema")], P, False, "retry", "premium"),
    (
        "schema twice on top tier flags",
        [A("premium", "schema"), A("premium", "schema")],
        P,
        True,
        "flag",
        "premium",
    ),
    (
        "schema twice on top tier fails without usable",
        [A("premium", "schema"), A("premium", "schema")],
        P,
        False,
        "fail",
        None,
    ),
    ("gate retries same tier once", [A("cheap", "gate", score=0.1)], P, True, "retry", "cheap"),
    (
        "gate twice escalates",
        [A("cheap", "gate", score=0.1), A("cheap", "gate", score=0.1)],
        P,
        True,
        "escalate",
        "mid",
    ),
    (
        "severe score escalates at once",
        [A("cheap", "gate", severe=True, score=0.01)],
        P,
        True,
        "escalate",
        "mid",
    ),
    (
        "severe goes straight to the top (seed 002)",
        [A("cheap", "gate", severe=True, score=0.01)],
        Policy(ladder=LADDER, severe_to_top=True),
        True,
        "escalate",
        "premium",
    ),
    (
        "severe to the top stops at the budget ceiling",
        [A("cheap", "gate", severe=True, score=0.01)],
        Policy(ladder=LADDER, severe_to_top=True, ceiling="mid"),
        True,
        "escalate",
        "mid",
    ),
    (
        "severe to the top, not above a supplementary start",
        [A("cheap", "gate", severe=True, score=0.01)],
        Policy(ladder=LADDER, severe_to_top=True, escalate=False),
        True,
        "retry",
        "cheap",
    ),
    (
        "a plain gate failure still retries first with severe_to_top",
        [A("cheap", "gate", score=0.4)],
        Policy(ladder=LADDER, severe_to_top=True),
        True,
        "retry",
        "cheap",
    ),
    (
        "severe on top tier retries (nothing above)",
        [A("premium", "gate", severe=True, score=0.01)],
        P,
        True,
        "retry",
        "premium",
    ),
    (
        "top tier exhausted flags with usable",
        [A("premium", "gate"), A("premium", "gate")],
        Policy(ladder=LADDER, max_attempts=5),
        True,
        "flag",
        "premium",
    ),
    (
        "top tier exhausted fails without usable",
        [A("premium", "gate"), A("premium", "gate")],
        Policy(ladder=LADDER, max_attempts=5),
        False,
        "fail",
        None,
    ),
    ("provider error falls back up", [A("cheap", "provider")], P, False, "fallback", "mid"),
    ("provider error on top falls back down", [A("premium", "provider")], P, False, "fallback", "mid"),
    (
        "fallback skips failed tiers going down",
        [A("premium", "provider"), A("mid", "provider")],
        P,
        False,
        "fallback",
        "cheap",
    ),
    (
        "fallback skips failed tiers going up",
        [A("cheap", "provider"), A("mid", "provider")],
        P,
        False,
        "fallback",
        "premium",
    ),
    (
        "fallback above first, then below",
        [A("mid", "provider")],
        P,
        False,
        "fallback",
        "premium",
    ),
    (
        "every provider failed",
        [A("cheap", "provider"), A("mid", "provider"), A("premium", "provider")],
        Policy(ladder=LADDER, max_attempts=5),
        False,
        "fail",
        None,
    ),
    (
        "every provider failed, usable kept",
        [A("cheap", "gate"), A("mid", "provider"), A("premium", "provider"), A("cheap", "provider")],
        Policy(ladder=LADDER, max_attempts=6),
        True,
        "flag",
        "cheap",
    ),
    ("budget flags with usable", [A("cheap", "gate"), A("cheap", "budget")], P, True, "flag", "cheap"),
    ("budget fails without usable on the cheapest", [A("cheap", "budget")], P, False, "fail", None),
    (
        "budget on premium without step-down fails (metadata)",
        [A("premium", "budget")],
        P,
        False,
        "fail",
        None,
    ),
    (
        "budget with usable flags, no cheap try",
        [A("premium", "gate"), A("premium", "budget")],
        P,
        True,
        "flag",
        "premium",
    ),
    (
        "escalate=False: gate exhausted on start tier flags",
        [A("cheap", "gate"), A("cheap", "gate")],
        Policy(ladder=LADDER, escalate=False),
        True,
        "flag",
        "cheap",
    ),
    (
        "escalate=False: schema retries on start tier",
        [A("cheap", "schema")],
        Policy(ladder=LADDER, escalate=False),
        False,
        "retry",
        "cheap",
    ),
    (
        "escalate=False: severe does not climb",
        [A("mid", "gate", severe=True)],
        Policy(ladder=LADDER, escalate=False),
        True,
        "retry",
        "mid",
    ),
    (
        "ceiling caps escalation",
        [A("mid", "gate"), A("mid", "gate")],
        Policy(ladder=LADDER, ceiling="mid", max_attempts=5),
        True,
        "flag",
        "mid",
    ),
    (
        "ceiling still allows climbing below it",
        [A("cheap", "gate"), A("cheap", "gate")],
        Policy(ladder=LADDER, ceiling="mid"),
        True,
        "escalate",
        "mid",
    ),
    (
        "ceiling: schema retries at the ceiling",
        [A("mid", "schema")],
        Policy(ladder=LADDER, ceiling="mid"),
        False,
        "retry",
        "mid",
    ),
    (
        "ceiling: provider fallback never goes above it",
        [A("mid", "provider")],
        Policy(ladder=LADDER, ceiling="mid"),
        False,
        "fallback",
        "cheap",
    ),
    (
        "max_attempts reached flags",
        [A("cheap", "gate"), A("cheap", "gate"), A("mid", "gate")],
        P,
        True,
        "flag",
        "mid",
    ),
    (
        "max_attempts reached fails without usable",
        [A("cheap", "schema"), A("mid", "schema"), A("premium", "schema")],
        P,
        False,
        "fail",
        None,
    ),
    (
        "max_attempts=1: first failure gives up",
        [A("cheap", "gate", severe=True)],
        Policy(ladder=LADDER, max_attempts=1),
        True,
        "flag",
        "cheap",
    ),
    (
        "per_tier_attempts=1: gate escalates at once",
        [A("cheap", "gate")],
        Policy(ladder=LADDER, per_tier_attempts=1),
        True,
        "escalate",
        "mid",
    ),
    (
        "off-ladder tier (long_context) counts as top",
        [A("long_context", "gate"), A("long_context", "gate")],
        Policy(ladder=LADDER, max_attempts=5),
        True,
        "flag",
        "long_context",
    ),
    (
        "off-ladder tier provider failure falls back down the ladder",
        [A("long_context", "provider")],
        P,
        False,
        "fallback",
        "mid",
    ),
]


@pytest.mark.parametrize(
    ("history", "policy", "has_usable", "action", "tier"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_next_step(
    history: list[Attempt], policy: Policy, has_usable: bool, action: str, tier: str | None
) -> None:
    step = next_step(history, policy, has_usable=has_usable)
    assert isinstance(step, Step)
    assert (step.action, step.tier) == (action, tier), step.reason
    assert step.reason


def test_reasons_name_the_cause() -> None:
    assert "schema" in next_step([A("cheap", "schema")], P, has_usable=False).reason
    assert "budget" in next_step([A("cheap", "budget")], P, has_usable=False).reason
    assert "0.01" in next_step([A("cheap", "gate", severe=True, score=0.01)], P, has_usable=True).reason
    flagged = next_step([A("cheap", "gate"), A("cheap", "gate"), A("mid", "gate")], P, has_usable=True)
    assert "human review" in flagged.reason and "3 attempts" in flagged.reason


def test_budget_gives_up_even_with_attempts_left() -> None:
    step = next_step([A("cheap", "budget")], Policy(ladder=LADDER, max_attempts=10), has_usable=False)
    assert step.action == "fail"


def test_pure_same_inputs_same_step() -> None:
    history = [A("cheap", "gate", score=0.2), A("cheap", "gate", score=0.3)]
    assert next_step(history, P, has_usable=True) == next_step(list(history), P, has_usable=True)


def test_empty_history_is_an_error() -> None:
    with pytest.raises(ValueError):
        next_step([], P, has_usable=False)


def test_provider_fallback_allowed_even_when_escalation_is_not() -> None:
    from courseforge.routing import Attempt, Policy, next_step

    step = next_step(
        [Attempt("cheap", "provider")],
        Policy(ladder=("cheap", "mid", "premium"), escalate=False),
        has_usable=False,
    )
    assert (step.action, step.tier) == ("fallback", "mid")
    capped = next_step(
        [Attempt("cheap", "provider")],
        Policy(ladder=("cheap", "mid", "premium"), escalate=False, ceiling="cheap"),
        has_usable=False,
    )
    assert capped.action == "fail"


def test_a_budget_blocked_first_attempt_steps_down_when_the_policy_allows_it() -> None:
    """A lesson pre-routed to premium whose call the budget blocked tries a cheaper tier that
    may still fit; with something usable kept, or without the policy's leave, it gives up."""
    down = Policy(ladder=("cheap", "mid", "premium"), step_down_on_budget=True)
    step = next_step([Attempt("premium", "budget")], down, has_usable=False)
    assert (step.action, step.tier) == ("fallback", "mid")
    step = next_step([Attempt("premium", "budget"), Attempt("mid", "budget")], down, has_usable=False)
    assert (step.action, step.tier) == ("fallback", "cheap")
    three = [Attempt("premium", "budget"), Attempt("mid", "budget"), Attempt("cheap", "budget")]
    assert next_step(three, down, has_usable=False).action == "fail"
    assert next_step([Attempt("premium", "budget")], down, has_usable=True).action == "flag"
    metadata = Policy(ladder=("cheap", "mid", "premium"))
    assert next_step([Attempt("premium", "budget")], metadata, has_usable=False).action == "fail"
