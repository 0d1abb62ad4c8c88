"""run_cascade through the real metered calls and ledger, with scripted models per tier."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from courseforge.config import Settings
from courseforge.domain.tasks import TaskId
from courseforge.errors import BadResponse, ProviderHTTPError
from courseforge.ledger import Ledger
from courseforge.providers import ChatRequest, Message
from courseforge.routing import Policy, Verdict, run_cascade
from courseforge.testing import ScriptedModel, sequence
from engine_helpers import course_calls, hosted_settings

SETTINGS: Settings = hosted_settings()
TIERS = SETTINGS.routing.tiers


class Rig:
    """Scripted models keyed by tier, the effects and the ledger they bill to."""

    def __init__(self, scripts: dict[str, Any], cap: Decimal = Decimal("1")) -> None:
        default = sequence([json.dumps({"value": "default", "score": 1.0})])
        self.models = {
            model_id: ScriptedModel(scripts.get(tier, default), model_id=model_id)
            for tier, model_id in TIERS.items()
        }
        self.ledger = Ledger(cap)
        self.effects = course_calls(SETTINGS, self.models, self.ledger)

    def on(self, tier: str) -> ScriptedModel:
        return self.models[TIERS[tier]]


def build(tier: str, attempt: int, feedback: str) -> ChatRequest:
    text = f"Do the task (tier {tier}, attempt {attempt})."
    if feedback:
        text += f"\nFEEDBACK: {feedback}"
    return ChatRequest([Message("user", text)], max_tokens=200)


def parse(text: str) -> dict[str, Any]:
    data = json.loads(text)
    if not isinstance(data, dict) or "value" not in data:
        raise ValueError("missing 'value'")
    return data


async def check_score(value: dict[str, Any], _spec: Any = None) -> Verdict:
    score = float(value.get("score", 0))
    passed = score >= 0.5
    return Verdict(
        passed,
        score=score,
        severe=score < 0.05,
        feedback="" if passed else f"score {score} too low: mention the key concept",
    )


def answer(value: str, score: float) -> str:
    return json.dumps({"value": value, "score": score})


async def run(
    rig: Rig, start: str = "cheap", policy: Policy | None = None, check: Callable[..., Any] = check_score
) -> Any:
    pol = policy or Policy(ladder=tuple(SETTINGS.routing.ladder))
    return await run_cascade(
        phase="lessons",
        task=TaskId.lesson_task("S1-L1"),
        start_tier=start,
        policy=lambda: pol,
        build=build,
        parse=parse,
        check=check,
        call=rig.effects.call,
    )


async def test_rejected_attempt_stays_billed_and_feedback_reaches_next_prompt() -> None:
    rig = Rig({"cheap": sequence([answer("first", 0.2), answer("second", 0.9)])})
    result = await run(rig)
    assert result.status == "accepted"
    assert result.value == {"value": "second", "score": 0.9}
    assert (result.tier, result.model, result.attempts) == ("cheap", TIERS["cheap"], 2)
    first, second = rig.ledger.records
    assert first.outcome == "rejected" and first.reason.startswith("gate:")
    assert "too low" in first.reason
    assert second.outcome == "ok"
    assert first.cost_usd > 0 and second.cost_usd > 0
    assert rig.ledger.spent == first.cost_usd + second.cost_usd
    assert [r.attempt for r in rig.ledger.records] == [1, 2]
    assert all(r.phase == "lessons" and r.task == "lesson:S1-L1" for r in rig.ledger.records)
    # the gate's feedback is in the retry's prompt, and not in the first one
    first_req, second_req = rig.on("cheap").requests
    assert "FEEDBACK" not in first_req.messages[-1].content
    assert "score 0.2 too low: mention the key concept" in second_req.messages[-1].content
    assert [d.action for d in result.decisions] == ["retry", "accept"]


async def test_schema_invalid_text_escalates_at_once() -> None:
    rig = Rig({"cheap": sequence(["not json at all"]), "mid": sequence([answer("good", 0.8)])})
    result = await run(rig)
    assert result.status == "accepted"
    assert (result.tier, result.model) == ("mid", TIERS["mid"])
    cheap, mid = rig.ledger.records
    assert (cheap.tier, cheap.outcome) == ("cheap", "rejected")
    assert cheap.reason.startswith("schema:")
    assert cheap.cost_usd > 0  # paid for, even though unusable
    assert (mid.tier, mid.outcome) == ("mid", "ok")
    assert rig.on("cheap").calls == 1
    escalate = result.decisions[0]
    assert escalate.action == "escalate" and escalate.tier == "mid"
    assert escalate.inputs["failure"] == "schema"
    assert "previous answer was not usable" in rig.on("mid").requests[0].messages[-1].content


async def test_bad_response_from_provider_counts_as_schema_failure() -> None:
    rig = Rig(
        {
            "cheap": sequence([BadResponse("answer cut off", kind="truncated")]),
            "mid": sequence([answer("ok", 0.9)]),
        }
    )
    result = await run(rig)
    assert result.status == "accepted" and result.tier == "mid"
    assert rig.ledger.records[0].outcome == "error"
    assert result.decisions[0].inputs["failure"] == "schema"
    assert "answer cut off" in rig.on("mid").requests[0].messages[-1].content


async def test_severe_score_escalates_without_same_tier_retry() -> None:
    rig = Rig({"cheap": sequence([answer("off", 0.01)]), "mid": sequence([answer("on", 0.7)])})
    result = await run(rig)
    assert [r.tier for r in rig.ledger.records] == ["cheap", "mid"]
    assert result.decisions[0].action == "escalate" and result.decisions[0].inputs["severe"] is True


async def test_flagged_result_keeps_the_best_scoring_attempt() -> None:
    rig = Rig(
        {
            "cheap": sequence([answer("a", 0.3), answer("b", 0.45)]),
            "mid": sequence([answer("c", 0.2)]),
        }
    )
    result = await run(rig)
    assert result.status == "flagged"
    assert result.value == {"value": "b", "score": 0.45}
    assert (result.tier, result.model) == ("cheap", TIERS["cheap"])
    assert result.verdict is not None and result.verdict.score == 0.45
    assert result.attempts == 3
    assert [r.outcome for r in rig.ledger.records] == ["rejected"] * 3
    assert rig.ledger.spent == sum((r.cost_usd for r in rig.ledger.records), Decimal(0))
    assert "human review" in result.reason
    assert result.decisions[-1].action == "flag"


async def test_provider_error_falls_back_and_is_recorded() -> None:
    rig = Rig(
        {
            "mid": sequence([ProviderHTTPError(503, "overloaded")]),
            "premium": sequence([answer("ok", 0.9)]),
        }
    )
    result = await run(rig, start="mid")
    assert result.status == "accepted" and result.tier == "premium"
    err, ok = rig.ledger.records
    assert (err.tier, err.outcome, err.cost_usd) == ("mid", "error", Decimal(0))
    assert "503" in err.reason
    assert ok.outcome == "ok"
    assert result.decisions[0].action == "fallback"
    assert isinstance(result.errors[0], ProviderHTTPError)


async def test_every_tier_failing_fails_without_value() -> None:
    boom = sequence([ProviderHTTPError(500, "down")])
    rig = Rig({"cheap": boom, "mid": boom, "premium": boom})
    result = await run(rig, policy=Policy(ladder=("cheap", "mid", "premium"), max_attempts=5))
    assert result.status == "failed" and result.value is None
    assert [r.tier for r in rig.ledger.records] == ["cheap", "mid", "premium"]
    assert len(result.errors) == 3


async def test_budget_block_fails_the_task_and_records_it() -> None:
    rig = Rig({}, cap=Decimal("0.00000001"))
    result = await run(rig)
    assert result.status == "failed"
    [record] = rig.ledger.records
    assert record.outcome == "budget_blocked" and "budget cap" in record.reason
    assert rig.on("cheap").calls == 0
    assert rig.ledger.spent == 0


async def test_policy_is_read_fresh_each_step() -> None:
    """The budget ceiling can change mid-task: the cascade asks for the policy every step."""
    rig = Rig({"cheap": sequence([answer("a", 0.3)])})
    calls: list[int] = []

    def policy() -> Policy:
        calls.append(1)
        ceiling = "cheap" if len(calls) > 1 else None
        return Policy(ladder=("cheap", "mid", "premium"), ceiling=ceiling)

    result = await run_cascade(
        phase="lessons",
        task=TaskId.lesson_task("t"),
        start_tier="cheap",
        policy=policy,
        build=build,
        parse=parse,
        check=check_score,
        call=rig.effects.call,
    )
    assert len(calls) == 2
    assert result.status == "flagged"
    assert {r.tier for r in rig.ledger.records} == {"cheap"}


async def test_verdict_without_score_still_keeps_a_usable_attempt() -> None:
    rig = Rig({"cheap": sequence([answer("x", 0.0)])})

    async def never(_: Any, __: Any) -> Verdict:
        return Verdict(False, feedback="no")

    result = await run(rig, policy=Policy(ladder=("cheap",), max_attempts=2), check=never)
    assert result.status == "flagged" and result.value == {"value": "x", "score": 0.0}
