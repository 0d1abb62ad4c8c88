"""An in-memory span exporter behind the process's one global tracer provider.

OpenTelemetry lets a process set its tracer provider once, so the first test that asks for
`spans` installs an SDK provider whose processor forwards finished spans to the exporter of the
test running now (and drops them between tests)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


class _Switch(SpanExporter):
    def __init__(self) -> None:
        self.target: InMemorySpanExporter | None = None

    def export(self, spans: object) -> SpanExportResult:
        if self.target is not None:
            return self.target.export(spans)  # type: ignore[arg-type]
        return SpanExportResult.SUCCESS


_switch = _Switch()


def _install() -> None:
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        return
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(_switch))
    trace.set_tracer_provider(provider)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    _install()
    exporter = InMemorySpanExporter()
    _switch.target = exporter
    try:
        yield exporter
    finally:
        _switch.target = None


def named(finished: tuple[ReadableSpan, ...] | list[ReadableSpan], prefix: str) -> list[ReadableSpan]:
    return [s for s in finished if s.name.startswith(prefix)]
