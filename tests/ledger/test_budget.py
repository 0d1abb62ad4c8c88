"""Ledger arithmetic, and the cap holding under 50 concurrent calls and a whole course."""

from __future__ import annotations

import asyncio
import random
from decimal import Decimal

import pytest
from pydantic import ValidationError

from courseforge.config import BudgetSettings, ModelSettings
from courseforge.domain import CallRecord
from courseforge.domain.tasks import TaskId
from courseforge.errors import BudgetExceeded
from courseforge.ledger import Ledger, estimate_input_tokens, phase_caps, price_of, worst_case_cost
from courseforge.providers import ChatRequest, Message, Usage
from courseforge.providers.effects import CallSpec
from courseforge.testing import CourseAuthor, ScriptedModel
from engine_helpers import course_calls, example_analysis, hosted_settings, make_engine, scripted_models

D = Decimal


def rec(cost: str, outcome: str = "ok", **kw: object) -> CallRecord:
    base: dict[str, object] = {"phase": "lessons", "task": "t", "model": "m", "tier": "cheap", "attempt": 1}
    base.update(kw)
    return CallRecord(**base, cost_usd=D(cost), outcome=outcome)  # type: ignore[arg-type]


def test_reserve_settle_release_arithmetic() -> None:
    ledger = Ledger(D("1.00"))
    a = ledger.reserve(D("0.30"))
    b = ledger.reserve(D("0.50"))
    assert ledger.committed == D("0.80")
    assert ledger.spent == 0
    assert ledger.fraction_used == pytest.approx(0.8)
    ledger.settle(a, rec("0.10"))
    assert ledger.spent == D("0.10")
    assert ledger.committed == D("0.60")
    ledger.release(b)
    assert ledger.committed == D("0.10")
    assert ledger.peak_committed == D("0.80")
    assert len(ledger.records) == 1


def test_decimal_sums_are_exact() -> None:
    ledger = Ledger(D("0.3"))
    for _ in range(3):
        ledger.settle(ledger.reserve(D("0.1")), rec("0.1"))
    assert ledger.spent == D("0.3")  # floats would give 0.30000000000000004
    assert ledger.committed == ledger.cap_usd
    with pytest.raises(BudgetExceeded):
        ledger.reserve(D("0.00000001"))


def test_reservation_up_to_the_cap_exactly_is_allowed() -> None:
    ledger = Ledger(D("0.5"))
    ledger.reserve(D("0.2"))
    ledger.reserve(D("0.3"))
    assert ledger.committed == D("0.5")


def test_budget_exceeded_holds_nothing() -> None:
    ledger = Ledger(D("1"))
    held = ledger.reserve(D("0.4"))
    with pytest.raises(BudgetExceeded) as info:
        ledger.reserve(D("0.7"))
    assert info.value.cap_usd == D("1")
    assert info.value.committed_usd == D("0.4")
    assert info.value.needed_usd == D("0.7")
    assert "0.7" in str(info.value)
    assert ledger.committed == D("0.4")
    assert ledger.peak_committed == D("0.4")
    ledger.release(held)
    assert ledger.committed == 0
    ledger.reserve(D("0.7"))  # the failed attempt left nothing behind


def test_release_and_settle_are_idempotent_about_the_hold() -> None:
    ledger = Ledger(D("1"))
    r = ledger.reserve(D("0.5"))
    ledger.release(r)
    ledger.release(r)
    ledger.settle(r, rec("0.2"))
    assert ledger.committed == D("0.2")


def test_record_holds_no_money_and_totals_skip_blocked_calls() -> None:
    ledger = Ledger(D("1"))
    ledger.record(rec("0", outcome="budget_blocked", phase="metadata"))
    ledger.settle(ledger.reserve(D("0.1")), rec("0.05", phase="metadata", model="a"))
    ledger.settle(ledger.reserve(D("0.1")), rec("0.02", outcome="rejected", phase="lessons", model="a"))
    by_phase = Ledger.totals(ledger.records, "phase")
    assert by_phase["metadata"].calls == 1  # the blocked one is listed, not counted as a call
    assert by_phase["metadata"].cost_usd == D("0.05")
    assert by_phase["lessons"].cost_usd == D("0.02")  # rejected answers stay on the bill
    assert Ledger.totals(ledger.records, "model")["a"].cost_usd == D("0.07")
    assert ledger.spent == D("0.07")


@pytest.mark.parametrize("cap", [D(0), D("-1")])
def test_cap_must_be_positive(cap: Decimal) -> None:
    with pytest.raises(ValueError):
        Ledger(cap)


def test_prices() -> None:
    model = ModelSettings(provider="p", name="n", price_in_per_m=D("0.78"), price_out_per_m=D("3.90"))
    cost, source = price_of(model, Usage(input_tokens=1000, output_tokens=500))
    assert (cost, source) == (D("0.00273"), "price_table")
    cost, source = price_of(model, Usage(input_tokens=1000, output_tokens=500, cost_usd=D("0.001")))
    assert (cost, source) == (D("0.001"), "provider")
    assert worst_case_cost(model, 1000, 2000) == D("0.00858")
    msgs = [Message("user", "abcd" * 10)]
    assert estimate_input_tokens(msgs) == 20 + 8
    # non-ASCII text is estimated by bytes, never under-reserved
    assert estimate_input_tokens([Message("user", "é" * 10)]) == 10 + 8


async def test_fifty_concurrent_calls_never_pass_the_cap() -> None:
    settings = hosted_settings()
    rng = random.Random(7)

    async def slow(request: ChatRequest) -> str:
        await asyncio.sleep(rng.uniform(0.001, 0.005))
        return "answer " * 50

    models = {m: ScriptedModel(slow, model_id=m) for m in settings.models}
    request = ChatRequest([Message("user", "write a lesson " * 40)], max_tokens=1000)
    premium = settings.models[settings.routing.tiers["premium"]]
    estimate = worst_case_cost(premium, estimate_input_tokens(request.messages), request.max_tokens)
    cap = estimate * D("12.5")  # room for 12 worst cases at once; real costs are far lower
    ledger = Ledger(cap)
    effects = course_calls(settings, models, ledger)

    async def one(i: int) -> str:
        spec = CallSpec(
            phase="lessons", task=TaskId.lesson_task(f"L{i}"), tier="premium", attempt=1, request=request
        )
        try:
            await effects.call(spec)
        except BudgetExceeded:
            return "blocked"
        return "ok"

    outcomes = await asyncio.gather(*(one(i) for i in range(50)))
    assert len(ledger.records) == 50  # none lost
    assert ledger.spent <= cap
    assert ledger.peak_committed <= cap
    assert ledger.committed == ledger.spent  # no reservation left behind
    blocked = [r for r in ledger.records if r.outcome == "budget_blocked"]
    ok = [r for r in ledger.records if r.outcome == "ok"]
    assert len(blocked) == outcomes.count("blocked") > 0
    assert len(ok) == outcomes.count("ok") >= 12
    assert all(r.cost_usd == 0 for r in blocked)
    assert ledger.spent == sum((r.cost_usd for r in ok), D(0))
    assert {r.task for r in ledger.records} == {f"lesson:L{i}" for i in range(50)}
    assert sum(m.calls for m in models.values()) == len(ok)


async def test_cancelled_call_releases_its_reservation() -> None:
    settings = hosted_settings()
    started = asyncio.Event()

    async def hang(request: ChatRequest) -> str:
        started.set()
        await asyncio.sleep(10)
        return "never"

    models = {m: ScriptedModel(hang, model_id=m) for m in settings.models}
    ledger = Ledger(D("1"))
    effects = course_calls(settings, models, ledger)
    spec = CallSpec(
        "lessons", TaskId.lesson_task("t"), "cheap", 1, ChatRequest([Message("user", "x")], max_tokens=100)
    )
    task = asyncio.create_task(effects.call(spec))
    await started.wait()
    assert ledger.committed > 0
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert ledger.committed == 0


@pytest.mark.parametrize("budget", ["0.001", "0.006"])
async def test_tiny_course_budget_fails_the_course_within_budget(budget: str) -> None:
    settings = hosted_settings()
    engine = make_engine(settings, scripted_models(settings))
    # Below the input's floor (MIN_BUDGET_USD): built past validation, to show the engine itself
    # never overspends even a cap too small to generate anything.
    result = await engine.generate(example_analysis().model_copy(update={"budget_usd": D(budget)}))
    report = result.report
    assert result.course is None
    assert report.status == "failed"
    assert report.budget_usd == D(budget)
    assert report.total_cost_usd <= D(budget)
    assert D(str(report.summary["peak_committed_usd"])) <= D(budget)
    assert "budget" in report.failure_reason
    assert any(c.outcome == "budget_blocked" for c in report.calls)


async def test_tiny_budget_blocks_the_critical_metadata_call() -> None:
    settings = hosted_settings()
    models = scripted_models(settings)
    engine = make_engine(settings, models)
    result = await engine.generate(example_analysis().model_copy(update={"budget_usd": D("0.001")}))
    report = result.report
    assert "metadata" in report.failure_reason and "budget" in report.failure_reason
    core = [c for c in report.calls if c.task == "metadata_core"]
    assert [(c.tier, c.outcome) for c in core] == [("premium", "budget_blocked")]
    assert models[settings.routing.tiers["premium"]].calls == 0  # never sent
    assert {c.phase for c in report.calls} == {"metadata"}  # no lesson was attempted
    assert report.total_cost_usd <= D("0.001")


async def test_budget_running_out_mid_course_flags_lessons_but_never_overspends() -> None:
    """Every lesson drifts off-topic, so lessons escalate until the cap blocks further attempts."""
    settings = hosted_settings()
    models = scripted_models(settings, lambda _m: CourseAuthor(off_topic=lambda _brief: True))
    engine = make_engine(settings, models)
    cap = D("0.01")
    result = await engine.generate(example_analysis(budget_usd=str(cap)))
    report = result.report
    assert report.total_cost_usd <= cap
    assert D(str(report.summary["peak_committed_usd"])) <= cap
    blocked = [c for c in report.calls if c.outcome == "budget_blocked"]
    assert blocked and all(c.phase != "metadata" for c in blocked)
    assert report.total_cost_usd == sum((c.cost_usd for c in report.calls), D(0))
    # blocked lessons keep their best (off-topic) attempt for a human to review
    assert result.course is not None and result.course.status == "needs_review"
    assert any(f.target.startswith("lesson:") for f in result.course.review)


# -- per-phase caps (seeds 000/001's budget split; issue 26 item 14) ---------------------------
def test_a_phase_cap_refuses_that_phase_only() -> None:
    ledger = Ledger(Decimal("1.00"), phase_caps_usd={"metadata": Decimal("0.30")})
    r = ledger.reserve(Decimal("0.20"), "metadata")
    with pytest.raises(BudgetExceeded) as caught:
        ledger.reserve(Decimal("0.15"), "metadata")  # 0.20 held + 0.15 > 0.30
    assert caught.value.phase == "metadata" and "phase 'metadata' budget cap" in str(caught.value)
    ledger.reserve(Decimal("0.50"), "lessons")  # another phase: only the course's cap holds
    ledger.release(r)
    assert ledger.phase_committed("metadata") == 0
    ledger.reserve(Decimal("0.25"), "metadata")  # released: room again
    with pytest.raises(BudgetExceeded) as course_wide:
        ledger.reserve(Decimal("0.30"), "lessons")  # 0.75 committed + 0.30 > 1.00
    assert course_wide.value.phase == ""


def test_phase_spend_counts_settled_records() -> None:
    ledger = Ledger(Decimal("1.00"), phase_caps_usd={"lessons": Decimal("0.10")})
    r = ledger.reserve(Decimal("0.09"), "lessons")
    ledger.settle(r, rec("0.08", phase="lessons"))
    assert ledger.phase_committed("lessons") == Decimal("0.08")
    with pytest.raises(BudgetExceeded):
        ledger.reserve(Decimal("0.03"), "lessons")


@pytest.mark.parametrize(
    ("shares", "ok"),
    [
        ({"metadata": 0.5, "lessons": 0.6}, True),
        ({"lessons": 0.0}, False),
        ({"x": 1.5}, False),
        ({"lesson": 0.5}, False),  # no such phase: it would cap nothing
    ],
)
def test_phase_shares_are_validated_and_turned_into_caps(shares: dict[str, float], ok: bool) -> None:
    if not ok:
        with pytest.raises(ValidationError, match="phase_shares"):
            BudgetSettings(phase_shares=shares)
        return
    settings = hosted_settings(budget=BudgetSettings(phase_shares=shares))
    assert phase_caps(Decimal("0.40"), settings) == {"metadata": Decimal("0.20"), "lessons": Decimal("0.24")}
    assert hosted_settings().budget.phase_shares == {"lessons": 0.6, "quality": 0.05}
