"""Every report figure against a small course worked out by hand (docs/report.md)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from courseforge.domain import CallRecord, Decision, GateScore, LessonGates, Report
from courseforge.pipeline.report_builder import (
    critical_path,
    critical_path_s,
    lesson_rates,
    quality_summary,
    recompute_totals,
)

LADDER = ("cheap", "mid", "premium")


def lesson(lesson_id: str, status: str, attempts: int, start: str, final: str, sim: float) -> LessonGates:
    gates = [GateScore(gate="similarity", passed=sim >= 0.5, score=sim, threshold=0.5)]
    return LessonGates(
        lesson_id=lesson_id,
        attempts=attempts,
        final_tier=final,
        final_model="m",
        gates=gates,
        status=status,
        start_tier=start,
    )


LESSONS = [
    lesson("S1-L1", "accepted", 1, "cheap", "cheap", 0.8),  # first attempt
    lesson("S1-L2", "accepted", 2, "cheap", "cheap", 0.6),  # retried on its tier
    lesson("S1-L3", "flagged", 3, "cheap", "mid", 0.4),  # escalated, still flagged
    lesson("S2-L1", "accepted", 1, "mid", "mid", 0.7),  # first attempt, started on mid
    lesson("S2-L2", "failed", 2, "cheap", "premium", 0.2),  # escalated, nothing usable
    lesson("S2-L3", "accepted", 1, "long_context", "premium", 0.9),  # long context is the top
]


def test_lesson_rates() -> None:
    rates = lesson_rates(LESSONS, LADDER)
    # accepted with one attempt: S1-L1, S2-L1, S2-L3 -> 3 of 6
    assert rates["first_attempt_pass_rate"] == 0.5
    # final above start: S1-L3 (cheap->mid), S2-L2 (cheap->premium); S2-L3 off the ladder is
    # the top already, so premium is not above it -> 2 of 6
    assert rates["lessons_escalated"] == 2
    assert rates["escalation_rate"] == pytest.approx(0.3333, abs=1e-4)
    assert lesson_rates([], LADDER) == {
        "first_attempt_pass_rate": None,
        "escalation_rate": None,
        "lessons_escalated": 0,
    }


def test_quality_summary_agrees_with_the_rates_and_counts_reviews() -> None:
    q = quality_summary(LESSONS, [], None, flags=2, ladder=LADDER)
    assert q["first_attempt_pass_rate"] == 0.5
    assert q["escalation_rate"] == pytest.approx(0.3333, abs=1e-4)
    assert q["similarity_mean"] == pytest.approx((0.8 + 0.6 + 0.4 + 0.7 + 0.2 + 0.9) / 6, abs=1e-4)
    assert q["gate_failures"] == {"similarity": 2}  # S1-L3 and S2-L2
    assert q["review_flags"] == 2


def rec(
    phase: str, task: str, latency: float, *, attempt: int = 1, round: int = 0, **kw: object
) -> CallRecord:
    return CallRecord(
        phase=phase, round=round, task=task, model="m", tier="cheap", attempt=attempt,
        latency_ms=latency, outcome=kw.pop("outcome", "ok"), **kw,  # type: ignore[arg-type]
    )  # fmt: skip


RECORDS = [
    # metadata: core and extras run together -> 1000
    rec("metadata", "metadata_core", 1000),
    rec("metadata", "metadata_extras", 300),
    # lessons: S1-L1 attempt 1 = an error then its fallback (100 + 400), attempt 2 = 400 -> 900
    rec("lessons", "lesson:S1-L1", 100, outcome="error"),
    rec("lessons", "lesson:S1-L1", 400),
    rec("lessons", "lesson:S1-L1", 400, attempt=2),
    # S1-L2 attempt 1 with two samples (600 and 700 at once) -> 700, attempt 2 -> 250,
    # then the judge and the stronger judge of one text together -> 350: 1300
    rec("lessons", "lesson:S1-L2", 600),
    rec("lessons", "lesson:S1-L2#s2", 700),
    rec("lessons", "lesson:S1-L2", 250, attempt=2),
    rec("lessons", "judge:S1-L2:abcd1234", 300),
    rec("lessons", "judge_strong:S1-L2:abcd1234", 350),
    # completeness rounds 1 and 2 send S1-L1 back: 400, then 450
    rec("completeness", "lesson:S1-L1/r1", 400, round=1),
    rec("completeness", "lesson:S1-L1/r2", 450, round=2),
]


def test_critical_path_worked_by_hand() -> None:
    # 1000 (metadata) + 1300 (S1-L2 in lessons) + 400 + 450 (completeness rounds) = 3150 ms
    assert critical_path_s(RECORDS, []) == pytest.approx(3.15)


def test_critical_path_names_its_calls() -> None:
    seconds, calls = critical_path(RECORDS, [])
    assert seconds == pytest.approx(3.15)
    # metadata_core, S1-L2's slower sample then its attempt 2, the slower judge, both rounds
    assert calls == [0, 6, 7, 9, 10, 11]
    assert sum(RECORDS[i].latency_ms for i in calls) == pytest.approx(3150)


def test_a_calibration_judge_forms_its_own_path() -> None:
    records = [*RECORDS, rec("lessons", "lesson:S1-L3", 500), rec("lessons", "judge:S1-L3:ffff0000", 2000)]
    calibrating = [
        Decision(task="lesson:S1-L3", action="judge_calibration", tier="mid", reason="calibration sample")
    ]
    # as a gating judge it would lengthen S1-L3's chain in the lessons stage: 1000 + 2500 + 850
    assert critical_path_s(records, []) == pytest.approx(4.35)
    # beside the pipeline: max(3.15 main path, 1000 + 500 + 2000 side path) = 3.5
    assert critical_path_s(records, calibrating) == pytest.approx(3.5)


def test_money_figures_after_calls_are_appended() -> None:
    calls = [
        rec("metadata", "metadata_core", 10, cost_usd=Decimal("0.01"), replayed=True),
        rec("lessons", "lesson:S1-L1", 10, cost_usd=Decimal("0.02")),
        rec("lessons", "lesson:S1-L2", 10, cost_usd=Decimal("0.005"), outcome="rejected", cached_tokens=40),
        rec("lessons", "lesson:S1-L3", 0, cache_hit=True),
        rec("lessons", "lesson:S1-L4", 0, outcome="budget_blocked"),
    ]
    report = Report(course_id="c", status="approved", budget_usd=Decimal("1"), calls=calls)
    recompute_totals(report)
    assert report.total_cost_usd == Decimal("0.035")
    assert report.summary["replayed_calls"] == 1
    assert report.summary["replayed_cost_usd"] == pytest.approx(0.01)
    assert report.summary["paid_this_run_usd"] == pytest.approx(0.025)
    assert report.cache_hits == report.summary["cache_hits"] == 1
    assert report.summary["cached_input_tokens"] == 40
    assert report.by_phase["lessons"].calls == 3  # the blocked call was never sent
    assert report.by_phase["lessons"].cost_usd == Decimal("0.025")
