"""Per-call Prometheus metrics, counted as calls are recorded; course outcomes; the textfile."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from courseforge.cli import app
from courseforge.config import Settings
from courseforge.domain import CallRecord, Report
from courseforge.providers import ChatRequest
from courseforge.resilience import (
    BreakerTransition,
    CallRecorded,
    FallbackTaken,
    FaultObserved,
    RetryScheduled,
)
from courseforge.telemetry.metrics import CallMetrics, breaker_value
from courseforge.testing import CourseAuthor, ScriptedModel
from engine_helpers import (
    EXAMPLES,
    author_reply,
    example_analysis,
    loopback_config,
    loopback_in_thread,
    make_engine,
    write_config,
)


def value(m: CallMetrics, name: str, **labels: str) -> float:
    """Sum of a metric's samples whose labels include `labels`."""
    total = 0.0
    for family in m.registry.collect():
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


async def test_calls_are_counted_while_the_course_runs(settings: Settings) -> None:
    metrics = CallMetrics()
    seen_during: list[float] = []
    author = CourseAuthor()

    def script(request: ChatRequest) -> str:
        seen_during.append(value(metrics, "courseforge_calls_total"))
        return author(request)

    models = {m: ScriptedModel(script, model_id=m) for m in settings.models}
    engine = make_engine(settings, models)
    engine.add_hook(metrics)
    try:
        result = await engine.generate(example_analysis())
    finally:
        await engine.aclose()
    report = result.report
    # Each provider call saw every earlier call already counted: per call, not at the end.
    assert seen_during == sorted(seen_during) and seen_during[-1] == len(report.calls) - 1
    assert value(metrics, "courseforge_calls_total") == len(report.calls)
    answered = [c for c in report.calls if c.outcome in ("ok", "rejected") and not c.replayed]
    assert value(metrics, "courseforge_call_latency_seconds_count") == len(answered)
    assert value(metrics, "courseforge_cost_usd_total") == pytest.approx(float(report.total_cost_usd))
    assert value(metrics, "courseforge_tokens_total", direction="input") == sum(
        c.input_tokens for c in report.calls
    )
    for model, totals in report.by_model.items():
        assert (
            value(metrics, "courseforge_tokens_total", model=model, direction="output")
            == totals.output_tokens
        )
    tiers = {c.tier for c in report.calls}
    assert {t for t in tiers if value(metrics, "courseforge_call_latency_seconds_count", tier=t)} == tiers
    # the course's outcome is only added when it is observed
    assert value(metrics, "courseforge_courses_total") == 0
    metrics.observe_course(report)
    assert value(metrics, "courseforge_courses_total", status=report.status) == 1
    assert value(metrics, "courseforge_course_cost_usd_sum") == pytest.approx(float(report.total_cost_usd))
    assert value(metrics, "courseforge_lessons_total") == len(report.lessons)


def record(**fields: object) -> CallRecord:
    base: dict[str, object] = dict(phase="lessons", task="lesson:S1-L1", model="m", tier="cheap", attempt=1)
    return CallRecord.model_validate({**base, **fields})


@pytest.mark.parametrize(
    ("rec", "expected"),
    [
        (record(outcome="ok", input_tokens=10, output_tokens=5, cost_usd=Decimal("0.01"), latency_ms=1500),
         {"courseforge_calls_total": 1, "courseforge_call_latency_seconds_sum": 1.5, "courseforge_cost_usd_total": 0.01,
          "courseforge_tokens_total": 15, "courseforge_budget_blocks_total": 0, "courseforge_cache_hits_total": 0}),
        (record(outcome="budget_blocked"),
         {"courseforge_calls_total": 1, "courseforge_budget_blocks_total": 1, "courseforge_call_latency_seconds_count": 0}),
        (record(outcome="error", latency_ms=300),
         {"courseforge_calls_total": 1, "courseforge_call_latency_seconds_count": 0, "courseforge_cost_usd_total": 0}),
        (record(outcome="ok", cost_usd=Decimal("0.02"), replayed=True),
         {"courseforge_calls_total": 1, "courseforge_replayed_cost_usd_total": 0.02, "courseforge_cost_usd_total": 0}),
        (record(outcome="ok", cache_hit=True, input_tokens=3, output_tokens=3, cached_tokens=3),
         {"courseforge_cache_hits_total": 1, "courseforge_call_latency_seconds_count": 0, "courseforge_tokens_total": 0}),
    ],
)  # fmt: skip
def test_one_recorded_call(rec: CallRecord, expected: dict[str, float]) -> None:
    metrics = CallMetrics()
    metrics(CallRecorded(rec))
    assert {name: value(metrics, name) for name in expected} == pytest.approx(expected)


def test_resilience_events() -> None:
    metrics = CallMetrics()
    metrics(RetryScheduled("m", 1, 0.5, "http_503"))
    metrics(FaultObserved("m", "http_503"))
    metrics(FaultObserved("m", "timeout"))
    metrics(FallbackTaken("m", "n", "timeout"))
    metrics(BreakerTransition("m", "closed", "open"))
    assert value(metrics, "courseforge_retries_total", model="m", kind="http_503") == 1
    assert value(metrics, "courseforge_provider_faults_total", model="m") == 2
    assert value(metrics, "courseforge_fallbacks_total", model="m", to_model="n") == 1
    assert value(metrics, "courseforge_breaker_open", model="m") == 1
    metrics(BreakerTransition("m", "open", "half_open"))
    assert value(metrics, "courseforge_breaker_open", model="m") == 0.5
    assert value(metrics, "courseforge_breaker_transitions_total", model="m") == 2
    assert value(metrics, "courseforge_breaker_transitions_total", to_state="half_open") == 1


@pytest.mark.parametrize(
    ("state", "gauge"), [("closed", 0.0), ("open", 1.0), ("half_open", 0.5), ("forced", 0.5)]
)
def test_breaker_value(state: str, gauge: float) -> None:
    assert breaker_value(state) == gauge


def test_course_outcome_figures() -> None:
    report = Report.model_validate(
        {
            "course_id": "c",
            "status": "needs_review",
            "budget_usd": "0.45",
            "total_cost_usd": "0.30",
            "escalations": 3,
            "review_flags": 2,
            "lessons": [
                {"lesson_id": f"S1-L{i}", "attempts": 1, "final_tier": "cheap", "final_model": "m",
                 "gates": [{"gate": "similarity", "passed": i != 0}]}
                for i in range(4)
            ],
            "quality": {"similarity_mean": 0.72, "escalation_rate": 0.5},
        }
    )  # fmt: skip
    metrics = CallMetrics()
    metrics.observe_course(report)
    assert value(metrics, "courseforge_courses_total", status="needs_review") == 1
    assert value(metrics, "courseforge_course_cost_usd_sum") == pytest.approx(0.30)
    assert value(metrics, "courseforge_course_similarity_mean_sum") == pytest.approx(0.72)
    assert value(metrics, "courseforge_lessons_total") == 4
    assert value(metrics, "courseforge_lessons_escalated_total") == 2
    assert value(metrics, "courseforge_escalations_total") == 3
    assert value(metrics, "courseforge_review_flags_total") == 2
    assert value(metrics, "courseforge_gate_checks_total", gate="similarity", result="fail") == 1


def calls_in(text: str) -> float:
    return sum(
        s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "courseforge_calls_total"
    )


def test_the_textfile_is_replaced_whole(tmp_path: Path) -> None:
    metrics = CallMetrics()
    path = tmp_path / "collector" / "courseforge.prom"
    metrics(CallRecorded(record(outcome="ok", latency_ms=200)))
    metrics.write_textfile(path)
    first = path.read_text("utf-8")
    metrics(CallRecorded(record(outcome="ok", latency_ms=200)))
    metrics.write_textfile(path)
    assert calls_in(first) == 1 and calls_in(path.read_text("utf-8")) == 2
    assert [p.name for p in path.parent.iterdir()] == ["courseforge.prom"]  # no temporary file left


def test_generate_writes_the_runs_metrics_file(tmp_path: Path) -> None:
    out, rep, prom = tmp_path / "course.json", tmp_path / "report.json", tmp_path / "textfile" / "run.prom"
    with loopback_in_thread(author_reply()) as server:
        config = write_config(tmp_path / "c.yaml", loopback_config(server.base_url))
        result = CliRunner().invoke(
            app,
            ["generate", str(EXAMPLES / "python-basics.json"), "-o", str(out), "--report", str(rep),
             "--config", str(config), "--metrics-file", str(prom)],
            env={"OPENROUTER_API_KEY": "", "COURSEFORGE_CONFIG": ""},
            catch_exceptions=False,
        )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    report = json.loads(rep.read_text("utf-8"))
    samples = [s for f in text_string_to_metric_families(prom.read_text("utf-8")) for s in f.samples]
    calls = sum(s.value for s in samples if s.name == "courseforge_calls_total")
    assert calls == len(report["calls"]) == len(server.requests)
    (courses,) = [s for s in samples if s.name == "courseforge_courses_total"]
    assert courses.labels == {"status": report["status"]} and courses.value == 1
    assert f"metrics: {prom}" in result.stderr


def test_generate_refuses_a_directory_as_metrics_file_before_any_call(tmp_path: Path) -> None:
    out = tmp_path / "course.json"
    with loopback_in_thread(author_reply()) as server:
        config = write_config(tmp_path / "c.yaml", loopback_config(server.base_url))
        result = CliRunner().invoke(
            app,
            ["generate", str(EXAMPLES / "python-basics.json"), "-o", str(out), "--config", str(config),
             "--metrics-file", str(tmp_path)],
            env={"OPENROUTER_API_KEY": "", "COURSEFORGE_CONFIG": ""},
        )  # fmt: skip
    assert result.exit_code == 2
    assert "--metrics-file" in result.stderr and "is a directory" in result.stderr
    assert server.requests == [] and not out.exists()


def test_reasoning_tokens_are_counted_apart_inside_output() -> None:
    metrics = CallMetrics()
    record = CallRecord(
        phase="lessons",
        task="lesson:S1-L1",
        model="gpt-oss-20b",
        tier="cheap",
        attempt=1,
        input_tokens=900,
        output_tokens=1400,
        reasoning_tokens=600,
        outcome="ok",
    )
    metrics.observe_call(record)
    assert value(metrics, "courseforge_tokens_total", model="gpt-oss-20b", direction="reasoning") == 600
    assert value(metrics, "courseforge_tokens_total", model="gpt-oss-20b", direction="output") == 1400
