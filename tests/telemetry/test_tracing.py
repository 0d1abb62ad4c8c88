"""Spans of a course: course → phase → lesson task → model call, with GenAI attributes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from courseforge.config import Settings
from courseforge.domain.tasks import TaskId
from courseforge.errors import ProviderHTTPError
from courseforge.ledger import Ledger
from courseforge.providers import ChatRequest, Message
from courseforge.providers.effects import CallSpec
from courseforge.telemetry.tracing import CAPTURE_CONTENT_ENV, configure_tracing, tracing_wanted
from courseforge.testing import ScriptedModel
from engine_helpers import course_calls, example_analysis, make_engine, scripted_models
from telemetry.conftest import named

ROOT = Path(__file__).resolve().parents[2]


async def run_course(settings: Settings) -> tuple[list[ReadableSpan], object]:
    engine = make_engine(settings, scripted_models(settings))
    try:
        result = await engine.generate(example_analysis())
    finally:
        await engine.aclose()
    return [], result


def by_id(finished: list[ReadableSpan]) -> dict[int, ReadableSpan]:
    return {s.context.span_id: s for s in finished}


def parent_of(span: ReadableSpan, index: dict[int, ReadableSpan]) -> ReadableSpan | None:
    return index.get(span.parent.span_id) if span.parent is not None else None


async def test_a_course_is_one_trace_course_phase_task_call(
    settings: Settings, spans: InMemorySpanExporter
) -> None:
    _, result = await run_course(settings)
    report = result.report  # type: ignore[attr-defined]
    finished = list(spans.get_finished_spans())
    index = by_id(finished)
    assert len({s.context.trace_id for s in finished}) == 1

    (course,) = named(finished, "course")
    assert course.parent is None
    assert course.attributes["courseforge.course_id"] == report.course_id
    assert course.attributes["courseforge.status"] == report.status
    assert course.attributes["courseforge.calls"] == len(report.calls)
    assert course.attributes["courseforge.cost_usd"] == pytest.approx(float(report.total_cost_usd))

    phases = named(finished, "phase ")
    assert [p.name for p in sorted(phases, key=lambda s: s.start_time or 0)] == [
        "phase metadata",
        "phase lessons",
        "phase quality",
        "phase completeness",
    ]
    assert all(parent_of(p, index) is course for p in phases)

    tasks = named(finished, "task lesson")
    # A self-consistency sample ("#s2", on for the hosted profile's critical lessons) is a call of
    # its generation's task, not a task of its own.
    lesson_tasks = {c.task.split("#")[0] for c in report.calls if c.task.startswith("lesson:")}
    assert sorted(t.attributes["courseforge.task"] for t in tasks) == sorted(lesson_tasks)
    assert len(tasks) >= len(report.lessons)  # phase 5 may generate a lesson again
    for t in tasks:  # each under the phase it ran in (lessons, or completeness for a regeneration)
        assert parent_of(t, index).name == f"phase {t.attributes['courseforge.phase']}"  # type: ignore[union-attr]
    for t in tasks:
        assert t.attributes["courseforge.status"] in ("accepted", "flagged", "failed")
        assert t.attributes["courseforge.routing.reason"]
        assert t.attributes["courseforge.start_tier"] in settings.routing.ladder
        verdicts = [e for e in t.events if e.name == "gate verdict"]
        assert verdicts and all("courseforge.gate.passed" in e.attributes for e in verdicts)

    # one model-call span per call record, each the child of its task (or of its phase)
    calls = [s for s in finished if s.name.startswith("chat ")]
    assert len(calls) == len(report.calls)
    assert Counter(s.attributes["courseforge.task"] for s in calls) == Counter(c.task for c in report.calls)
    for s in calls:
        parent = parent_of(s, index)
        assert parent is not None and parent.name.split(" ")[0] in ("task", "phase", "check")
        assert s.kind is SpanKind.CLIENT
        assert s.attributes["gen_ai.operation.name"] == "chat"
        model_id = s.attributes["courseforge.model_id"]
        assert s.attributes["gen_ai.request.model"] == settings.models[model_id].name
        assert s.name == f"chat {settings.models[model_id].name}"
        assert s.attributes["gen_ai.provider.name"] == settings.models[model_id].provider
        assert s.attributes["courseforge.tier"] in settings.routing.tiers
        assert "gen_ai.input.messages" not in s.attributes  # content capture is off by default
    lesson_calls = [s for s in calls if s.attributes["courseforge.task"].startswith("lesson:")]
    assert all(parent_of(s, index).name == "task lesson" for s in lesson_calls)  # type: ignore[union-attr]
    records = {(c.task, c.attempt, c.model): c for c in report.calls}
    for s in calls:
        a = s.attributes
        record = records[a["courseforge.task"], a["courseforge.attempt"], a["courseforge.model_id"]]
        assert a["gen_ai.usage.input_tokens"] == record.input_tokens
        assert a["gen_ai.usage.output_tokens"] == record.output_tokens
        assert a["gen_ai.usage.cache_read.input_tokens"] == record.cached_tokens
        assert a["gen_ai.usage.reasoning.output_tokens"] == record.reasoning_tokens
        assert a["courseforge.cost_usd"] == pytest.approx(float(record.cost_usd))
        assert a["courseforge.cached"] is False
        if record.outcome == "ok":
            assert a["gen_ai.response.model"] == a["courseforge.model_id"]  # the scripted model's name
            assert tuple(a["gen_ai.response.finish_reasons"]) == ("stop",)


async def test_prompt_text_only_with_the_capture_switch(
    settings: Settings, spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CAPTURE_CONTENT_ENV, "true")
    model = ScriptedModel(lambda r: '{"answer": "42"}', model_id="gpt-oss-20b")
    calls = course_calls(
        settings, {m: model for m in settings.models}, Ledger(settings.budget.per_course_usd)
    )
    request = ChatRequest([Message("user", "What is 6 x 7?")], max_tokens=50)
    await calls.call(CallSpec("metadata", TaskId("metadata_extras"), "cheap", 1, request))
    (span,) = named(spans.get_finished_spans(), "chat ")
    assert "What is 6 x 7?" in span.attributes["gen_ai.input.messages"]
    assert '\\"answer\\": \\"42\\"' in span.attributes["gen_ai.output.messages"]


async def test_a_provider_error_is_the_spans_error_type(
    settings: Settings, spans: InMemorySpanExporter
) -> None:
    model = ScriptedModel(lambda r: ProviderHTTPError(503, "upstream down"), model_id="gpt-oss-20b")
    calls = course_calls(
        settings, {m: model for m in settings.models}, Ledger(settings.budget.per_course_usd)
    )
    request = ChatRequest([Message("user", "hello")], max_tokens=50)
    with pytest.raises(ProviderHTTPError):
        await calls.call(CallSpec("metadata", TaskId("metadata_extras"), "cheap", 2, request))
    (span,) = named(spans.get_finished_spans(), "chat ")
    assert span.attributes["error.type"] == "http_503"
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["courseforge.outcome"] == "error"
    assert span.attributes["courseforge.attempt"] == 2


@pytest.mark.parametrize(
    ("env", "wanted"),
    [
        ({}, None),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, "otlp"),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, "otlp"),
        ({"OTEL_TRACES_EXPORTER": "console"}, "console"),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318"}, None),
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, None),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, None),
    ],
)
def test_tracing_is_off_unless_the_standard_variables_ask(env: dict[str, str], wanted: str | None) -> None:
    assert tracing_wanted(env) == wanted


def test_configure_with_tracing_off_installs_nothing() -> None:
    from opentelemetry import trace

    before = trace.get_tracer_provider()
    stop = configure_tracing({})
    stop()
    assert trace.get_tracer_provider() is before


@pytest.mark.subprocess
def test_a_course_runs_without_opentelemetry_installed() -> None:
    # The fast core install has no `service` extra: every span is a no-op, nothing fails.
    script = textwrap.dedent(
        """
        import asyncio, sys
        sys.modules["opentelemetry"] = None  # as if it were not installed
        sys.path.insert(0, "tests")
        from engine_helpers import example_analysis, hosted_settings, make_engine, scripted_models
        import courseforge.telemetry.tracing as tracing
        assert tracing._trace is None
        settings = hosted_settings()
        async def main():
            engine = make_engine(settings, scripted_models(settings))
            result = await engine.generate(example_analysis())
            await engine.aclose()
            print(result.report.status, len(result.report.calls))
        asyncio.run(main())
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    status, calls = done.stdout.split()
    assert status in ("approved", "needs_review") and int(calls) > 10
