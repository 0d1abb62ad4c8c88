"""The report's pictures: one bar per call on its lane, kinds coloured, the critical path
outlined, gate cells per lesson; every text escaped."""

from __future__ import annotations

import re
from decimal import Decimal

from courseforge.domain import CallRecord, GateScore, LessonGates, Report, Totals
from courseforge.pipeline.report_builder import critical_path
from courseforge.views import call_kinds, report_document, report_html


def call(task: str, attempt: int, tier: str, start: float, ms: float, **kw: object) -> CallRecord:
    return CallRecord(
        phase="lessons", task=task, model=f"m-{tier}", tier=tier, attempt=attempt, started_ms=start,
        latency_ms=ms, outcome=kw.pop("outcome", "ok"), cost_usd=Decimal("0.001"), **kw,  # type: ignore[arg-type]
    )  # fmt: skip


CALLS = [
    call("metadata_core", 1, "premium", 0, 500),
    call("lesson:S1-L1", 1, "cheap", 500, 100, outcome="error"),  # error, then the chain's next model
    call("lesson:S1-L1", 1, "cheap", 600, 300),
    call("lesson:S1-L1", 2, "cheap", 900, 300, outcome="rejected"),  # same tier again
    call("lesson:S1-L1", 3, "mid", 1200, 400),  # escalated
    call("lesson:S1-L2", 1, "cheap", 500, 200, cache_hit=True),
    call("lesson:S1-L2#s2", 1, "cheap", 500, 250, replayed=True),
]


def test_call_kinds() -> None:
    assert call_kinds(CALLS) == ["first", "error", "fallback", "retry", "escalation", "cache", "replayed"]


def _report() -> Report:
    gates = [
        GateScore(gate="similarity", passed=False, score=0.31, threshold=0.7, reasons=["off <topic>"]),
        GateScore(gate="length", passed=True, score=510),
    ]
    return Report(
        course_id="c<1>",
        status="needs_review",
        budget_usd=Decimal("0.45"),
        total_cost_usd=Decimal("0.007"),
        calls=CALLS,
        lessons=[
            LessonGates(lesson_id="S1-L1", attempts=3, final_tier="mid", final_model="m-mid", gates=gates)
        ],
        by_phase={"lessons": {"calls": 7, "cost_usd": "0.007"}},  # type: ignore[dict-item]
        by_model={"m-cheap": {"calls": 5, "cost_usd": "0.005"}, "m-mid": {"calls": 1, "cost_usd": "0.001"}},  # type: ignore[dict-item]
    )


def test_report_views() -> None:
    report = _report()
    out = report_html(report)
    bars = re.findall(r'<rect x="[^"]+" y="[^"]+" width="[^"]+" height="[^"]+" class="call ([^"]+)"', out)
    assert len(bars) == len(CALLS)
    _, path = critical_path(CALLS, [])
    assert sum("critical" in b for b in bars) == len(path) > 0
    assert [b.split()[0] for b in bars] == [f"k-{k}" for k in call_kinds(CALLS)]
    assert sum("rejected" in b for b in bars) == 1
    # the same calls as a table (for keyboards and screen readers), critical ones marked
    assert out.count('<tr><th scope="row">') == len(CALLS)
    assert out.count("<td>yes</td></tr>") == len(path)
    # lanes: one per task, the sample folded into its lesson
    assert out.count('class="lane">lesson:S1-L2<') == 1 and "S1-L2#s2</text>" not in out
    # cost bars: one per phase and per model
    assert out.count('class="bar"') == 1 + 2
    # the gate grid: a failed and a passed cell, the reason escaped in its tooltip
    assert 'class="fail"' in out and 'class="pass"' in out and "off &lt;topic&gt;" in out
    assert "<topic>" not in out


def test_one_self_contained_file() -> None:
    page = report_document(_report())
    assert page.startswith("<!doctype html>") and "<style>" in page
    assert "<title>courseforge report — c&lt;1&gt;</title>" in page
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing fetched from elsewhere


def test_reasoning_tokens_and_the_billed_price_check_are_shown() -> None:
    report = _report()
    report.by_model = {
        "gpt-oss-20b": Totals(calls=2, output_tokens=2000, reasoning_tokens=500, cost_usd=Decimal("0.001")),
        "qwen3-max": Totals(calls=1, output_tokens=500, cost_usd=Decimal("0.004")),
    }
    report.summary["price_check"] = {
        "qwen3-max": {"calls": 1, "billed_usd": 0.0042, "price_table_usd": 0.004, "billed_over_table": 1.05}
    }
    out = report_html(report)
    assert "<dt>reasoning tokens</dt><dd>500 (20% of output, billed as output): gpt-oss-20b 500</dd>" in out
    assert "(500 reasoning) tokens" in out  # the cost bar's tooltip
    assert "qwen3-max $0.0042 vs $0.0040 (1 calls)" in out
