"""Reasoning models: the effort a call asks for, the thinking it is budgeted for, and what is
learnt from the usage the provider reports.

A reasoning model's thinking counts against `max_tokens` and is billed as output. So each call
to one asks for `max_tokens` = the answer's budget (what the pipeline set) + a reasoning budget:
the reasoning tokens expected for this model, task kind and effort (the configured prior until
`MIN_SAMPLES` calls have reported theirs, then the observed p90) times the model's headroom.
The ledger reserves the whole `max_tokens` at the output price, so the reservation includes the
expected thinking. A `length` finish with an empty or cut answer is asked again once, on the
same model, with a lower effort (where there is one) and twice the reasoning budget
(`after_length`), before the chain moves on.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass, replace
from typing import Any

from ..config import ModelSettings
from ..config.settings import EFFORTS, Effort
from ..errors import BadResponse
from ..providers import ChatRequest, Usage

__all__ = ["MIN_SAMPLES", "ReasoningBudgets", "ReasoningPlan", "after_length", "observe", "plan_reasoning"]

#: Observed calls of a (model, kind, effort) before their p90 replaces the configured prior.
MIN_SAMPLES = 3
#: Observations kept per (model, kind, effort).
_WINDOW = 64
#: Growth of a non-reasoning model's `max_tokens` when its answer was cut.
_PLAIN_GROWTH = 2


class ReasoningBudgets:
    """Reasoning tokens observed per (model, task kind, effort); shared by an engine's courses."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str, str], deque[int]] = {}
        self._lock = threading.Lock()

    def observe(self, model_id: str, kind: str, effort: str, tokens: int) -> None:
        with self._lock:
            self._seen.setdefault((model_id, kind, effort), deque(maxlen=_WINDOW)).append(tokens)

    def expected(self, model_id: str, kind: str, effort: str, prior: int) -> tuple[int, str]:
        """(tokens, source): the p90 of what was observed once there is enough of it, else `prior`."""
        with self._lock:
            seen = sorted(self._seen.get((model_id, kind, effort), ()))
        if len(seen) < MIN_SAMPLES:
            return prior, "prior"
        return seen[max(0, math.ceil(0.9 * len(seen)) - 1)], f"p90 of {len(seen)} calls"


@dataclass(frozen=True, slots=True)
class ReasoningPlan:
    """What one call to one model asks for."""

    request: ChatRequest
    #: The answer's budget (the pipeline's `max_tokens`).
    answer_tokens: int
    #: The effort asked for ("" for a model that does not reason).
    effort: str = ""
    #: Reasoning tokens expected, and the budget added to `max_tokens` for them.
    expected_tokens: int = 0
    budget_tokens: int = 0
    #: Why the call was asked again (after a length cut), for its record.
    note: str = ""


def _effort_for(ms: ModelSettings, kind: str, phase: str) -> Effort:
    rs = ms.reasoning
    assert rs is not None
    effort = rs.effort.get(kind) or rs.effort.get(phase) or rs.default_effort
    if effort == "none" and not rs.can_disable:
        return "low"  # the least a model that cannot stop thinking has
    return effort


def _body(ms: ModelSettings, effort: str, budget: int) -> dict[str, Any] | None:
    rs = ms.reasoning
    assert rs is not None
    body: dict[str, Any] = {}
    if effort == "none":
        body["enabled"] = False
    elif rs.steer == "effort":
        body["effort"] = effort
    elif rs.steer == "max_tokens":
        body["max_tokens"] = max(1, budget)
    if rs.exclude and effort != "none":
        body["exclude"] = True
    return body or None


def plan_reasoning(
    ms: ModelSettings, model_id: str, kind: str, phase: str, request: ChatRequest, budgets: ReasoningBudgets
) -> ReasoningPlan:
    """The request `model_id` is sent: the pipeline's, with the reasoning budget and object of a
    reasoning model added (unchanged for a model that does not reason)."""
    rs = ms.reasoning
    if rs is None:
        return ReasoningPlan(request, request.max_tokens)
    effort = _effort_for(ms, kind, phase)
    expected = 0
    if effort != "none":
        prior = rs.expected_tokens.get(effort, rs.expected_tokens.get(rs.default_effort, 0))
        expected, _ = budgets.expected(model_id, kind, effort, prior)
    budget = math.ceil(expected * rs.headroom)
    sent = replace(request, max_tokens=request.max_tokens + budget, reasoning=_body(ms, effort, budget))
    return ReasoningPlan(sent, request.max_tokens, effort, expected, budget)


def observe(budgets: ReasoningBudgets, model_id: str, kind: str, plan: ReasoningPlan, usage: object) -> None:
    """Learn from a billed answer's reasoning tokens (a cut answer's are a lower bound: kept)."""
    if plan.effort and plan.effort != "none" and isinstance(usage, Usage):
        budgets.observe(model_id, kind, plan.effort, usage.reasoning_tokens)


def after_length(ms: ModelSettings, plan: ReasoningPlan, error: BadResponse) -> ReasoningPlan | None:
    """The request to send again after `error`, when it is a `length` finish with an empty or
    cut answer and this plan was not already a second try; None: move on down the chain."""
    if plan.note or error.kind != "truncated" or error.finish_reason != "length":
        return None
    used = error.usage.reasoning_tokens if isinstance(error.usage, Usage) else 0
    old_max = plan.request.max_tokens
    if ms.reasoning is None or plan.effort in ("", "none"):
        new_max = min(old_max * _PLAIN_GROWTH, ms.max_output_tokens)
        if new_max <= old_max:
            return None
        sent = replace(plan.request, max_tokens=new_max)
        note = f"asked again after a length cut: max_tokens {old_max} -> {new_max}"
        return replace(plan, request=sent, note=note)
    effort: Effort = plan.effort  # type: ignore[assignment]
    lower = effort
    if ms.reasoning.steer == "effort" and EFFORTS.index(effort) > EFFORTS.index("low"):
        lower = EFFORTS[EFFORTS.index(effort) - 1]
    budget = max(2 * plan.budget_tokens, 2 * used)
    new_max = min(plan.answer_tokens + budget, ms.max_output_tokens)
    if new_max <= old_max and lower == effort:
        return None
    sent = replace(plan.request, max_tokens=max(new_max, old_max), reasoning=_body(ms, lower, budget))
    what = [f"max_tokens {old_max} -> {sent.max_tokens}"]
    if lower != effort:
        what.append(f"effort {effort} -> {lower}")
    note = f"asked again after a length cut ({used} reasoning tokens): {', '.join(what)}"
    return replace(plan, request=sent, effort=lower, budget_tokens=budget, note=note)
