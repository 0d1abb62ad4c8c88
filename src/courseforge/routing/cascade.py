"""Runs one task up the attempt ladder: call, parse, check, decide, repeat.

The cascade falls back on provider errors *and* on answers a check rejects; a rejected
answer's call record stays on the ledger marked `rejected`, so the bill shows every attempt.
It knows nothing about lessons or gates: the caller gives it `build` (tier, attempt, feedback
-> request), `parse` (text -> value), `check` (value, the call that produced it -> Verdict) and
`call` (the metered call: `Effects.call`, or a function around it such as sampling).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from pydantic import ValidationError

from ..domain import Decision
from ..domain.tasks import TaskId
from ..errors import BadResponse, BudgetExceeded, CascadeExhausted, GateFailed, ProviderError
from ..providers import ChatRequest
from ..providers.effects import CallResult, CallSpec
from .ladder import Attempt, Policy, next_step

__all__ = ["WEAKER_FALLBACK", "TaskResult", "Verdict", "run_cascade"]

#: How a call record's reason starts when a weaker model stood in for an unavailable primary
#: (`engine/calls.py` writes it). Never escalate down: a cheaper model stands in only while the
#: primary is rate limited or unavailable, and its answer is kept, but flagged for review.
WEAKER_FALLBACK = "weaker fallback for"

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Verdict:
    passed: bool
    score: float | None = None
    severe: bool = False
    #: Short text the next attempt's prompt carries.
    feedback: str = ""
    #: Gate results or anything the caller wants back with the value.
    details: Any = None


@dataclass(slots=True)
class TaskResult(Generic[T]):
    status: Literal["accepted", "flagged", "failed"]
    value: T | None
    verdict: Verdict | None
    tier: str
    model: str
    attempts: int
    reason: str
    decisions: list[Decision] = field(default_factory=list)
    #: Why each attempt that did not pass failed, in order (provider errors, schema errors,
    #: `GateFailed` for a gate's rejection, `BudgetExceeded`).
    errors: list[Exception] = field(default_factory=list)

    def exhausted(self) -> CascadeExhausted | None:
        """For a task that ended without a usable value: every attempt's error as one group."""
        if self.status != "failed" or not self.errors:
            return None
        return CascadeExhausted(f"every attempt failed: {self.reason}", self.errors)


def _schema_feedback(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        parts = [f"{'.'.join(str(p) for p in e['loc']) or 'answer'}: {e['msg']}" for e in exc.errors()[:4]]
        return "Your previous answer did not match the schema (" + "; ".join(parts) + "). Fix these."
    return f"Your previous answer was not usable ({exc}). Answer with one JSON object only."


async def run_cascade(
    *,
    phase: str,
    task: TaskId,
    start_tier: str,
    policy: Callable[[], Policy],
    build: Callable[[str, int, str], ChatRequest],
    parse: Callable[[str], T],
    check: Callable[[T, CallSpec], Awaitable[Verdict]],
    call: Callable[[CallSpec], Awaitable[CallResult]],
    round: int = 0,
) -> TaskResult[T]:
    history: list[Attempt] = []
    decisions: list[Decision] = []
    errors: list[Exception] = []
    best: tuple[float, T, Verdict, str, str] | None = None
    tier, feedback = start_tier, ""
    while True:
        attempt_no = len(history) + 1
        request = build(tier, attempt_no, feedback)
        spec = CallSpec(phase=phase, task=task, tier=tier, attempt=attempt_no, request=request, round=round)
        try:
            result = await call(spec)
        except BudgetExceeded as exc:
            errors.append(exc)
            history.append(Attempt(tier, "budget"))
        except ProviderError as exc:
            errors.append(exc)
            kind: Literal["schema", "provider"] = "schema" if isinstance(exc, BadResponse) else "provider"
            history.append(Attempt(tier, kind))
            if kind == "schema":
                feedback = _schema_feedback(exc)
        else:
            model = result.record.model
            if result.response.repairs:
                decisions.append(
                    Decision(
                        task=task.key(),
                        action="repair",
                        tier=tier,
                        reason="answer repaired by its schema: " + "; ".join(result.response.repairs)[:400],
                        inputs={
                            "attempt": attempt_no,
                            "model": model,
                            "repairs": list(result.response.repairs),
                        },
                    )
                )
            try:
                value = parse(result.response.text)
            except (ValidationError, BadResponse, ValueError) as exc:
                errors.append(exc)
                result.reject(f"schema: {str(exc).splitlines()[0]}")
                history.append(Attempt(tier, "schema"))
                feedback = _schema_feedback(exc)
            else:
                verdict = await check(value, spec)
                score = verdict.score if verdict.score is not None else (1.0 if verdict.passed else 0.0)
                if verdict.passed and result.record.reason.startswith(WEAKER_FALLBACK):
                    why = f"answered by {model}, a {result.record.reason}: kept, flagged for review"
                    decisions.append(
                        Decision(
                            task=task.key(),
                            action="flag",
                            tier=tier,
                            reason=why,
                            inputs={"attempt": attempt_no},
                        )
                    )
                    return TaskResult(
                        "flagged", value, verdict, tier, model, attempt_no, why, decisions, errors
                    )
                if verdict.passed:
                    history.append(Attempt(tier, "ok", score=verdict.score))
                    decisions.append(
                        Decision(
                            task=task.key(),
                            action="accept",
                            tier=tier,
                            reason="gates passed",
                            inputs={"attempt": attempt_no, "score": verdict.score},
                        )
                    )
                    return TaskResult(
                        "accepted", value, verdict, tier, model, attempt_no, "gates passed", decisions, errors
                    )
                result.reject(f"gate: {verdict.feedback}")
                errors.append(GateFailed([verdict.feedback] if verdict.feedback else [], score=verdict.score))
                if best is None or score > best[0]:
                    best = (score, value, verdict, tier, model)
                history.append(Attempt(tier, "gate", severe=verdict.severe, score=verdict.score))
                feedback = verdict.feedback
        current = policy()
        step = next_step(history, current, has_usable=best is not None)
        last = history[-1]
        decisions.append(
            Decision(
                task=task.key(),
                action=step.action,
                tier=step.tier or tier,
                reason=step.reason,
                inputs={
                    "attempt": attempt_no,
                    "from_tier": tier,
                    "failure": last.kind,
                    "score": last.score,
                    "severe": last.severe,
                    "ceiling": current.ceiling,
                },
            )
        )
        if step.action in ("flag", "fail"):
            if step.action == "flag" and best is not None:
                _, value, verdict, btier, bmodel = best
                return TaskResult(
                    "flagged", value, verdict, btier, bmodel, attempt_no, step.reason, decisions, errors
                )
            return TaskResult("failed", None, None, tier, "", attempt_no, step.reason, decisions, errors)
        assert step.tier is not None
        tier = step.tier
