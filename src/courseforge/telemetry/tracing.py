"""Traces: one course is a tree of spans, course → phase → task → model call (and gate check).

Off by default. `configure_tracing(env)` installs an OpenTelemetry SDK tracer provider only when
the standard variables ask for one: `OTEL_TRACES_EXPORTER` (`otlp` — OTLP over HTTP/protobuf —,
`console` or `none`), or an OTLP endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT`,
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`); `OTEL_SDK_DISABLED=true` wins. The exporter and the
resource read their own `OTEL_*` variables (headers, timeout, `OTEL_SERVICE_NAME`, ...).

The code that makes spans asks the global OpenTelemetry API, as a library should: without a
configured provider every span is a non-recording one (its attributes are never computed), and
without the `opentelemetry` packages at all (a core install) `span` yields an object that
ignores everything — nothing here ever fails a course.

Model-call spans follow the GenAI semantic conventions (`chat {gen_ai.request.model}`, kind
CLIENT, `gen_ai.*` and `error.type`) plus ours under `courseforge.*`; prompts and answers are
recorded (`gen_ai.input.messages`, `gen_ai.output.messages`) only when
`OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT` is true.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from typing import Any, Literal, TypeVar

from ..domain import CallRecord
from ..providers import ChatRequest, ChatResponse
from ..resilience import fault_kind

try:  # the `service` extra; a core install traces nothing
    from opentelemetry import trace as _trace
    from opentelemetry.trace import SpanKind, Status, StatusCode
except ImportError:  # pragma: no cover - exercised by a subprocess test without the packages
    _trace = None  # type: ignore[assignment]

__all__ = [
    "CAPTURE_CONTENT_ENV",
    "TRACER_NAME",
    "ModelCallSpan",
    "SpanHandle",
    "capture_content",
    "configure_tracing",
    "is_cached",
    "model_call_span",
    "span",
    "tracing_wanted",
]

log = logging.getLogger("courseforge.telemetry")

TRACER_NAME = "courseforge"
#: The GenAI conventions' switch for recording prompt and answer text.
CAPTURE_CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
_TRUE = ("1", "true", "yes", "on")

AttrValue = str | bool | int | float | list[str]


class SpanHandle:
    """What instrumented code may do to its span; every method is a no-op on a span that does
    not record (tracing off), so callers never test for it."""

    __slots__ = ("_span",)

    def __init__(self, span: Any = None) -> None:
        self._span = span if span is not None and span.is_recording() else None

    @property
    def recording(self) -> bool:
        return self._span is not None

    def set(self, attributes: Mapping[str, AttrValue | None]) -> None:
        if self._span is not None:
            self._span.set_attributes({k: v for k, v in attributes.items() if v is not None})

    def event(self, name: str, attributes: Mapping[str, AttrValue | None]) -> None:
        if self._span is not None:
            self._span.add_event(name, {k: v for k, v in attributes.items() if v is not None})

    def error(self, kind: str, message: str = "") -> None:
        """Mark the span failed with a low-cardinality `error.type`."""
        if self._span is not None:
            self._span.set_attribute("error.type", kind)
            self._span.set_status(Status(StatusCode.ERROR, message[:200] or kind))


_OFF = SpanHandle()
_OFF_BLOCK = contextlib.nullcontext(_OFF)


def is_cached(record: CallRecord) -> bool:
    """Was this call answered from our response cache? (`cache_hit`; a `cached` flag too, where
    a build's records carry one.)"""
    return bool(record.cache_hit or getattr(record, "cached", False))


_cached: tuple[Any, Any] = (None, None)
_UNKNOWN = object()


def _tracer() -> Any:
    """The tracer of the process's provider, or None while no SDK provider is set (tracing
    off: a span then costs a function call, not the API's non-recording span and context)."""
    global _cached
    if _trace is None:
        return None
    # The API's global, read directly: `get_tracer_provider()` looks at the environment on
    # every call while none is set, which would cost more than the rest of a call's metering.
    provider: Any = getattr(_trace, "_TRACER_PROVIDER", _UNKNOWN)
    if provider is _UNKNOWN:  # an API version without it: ask the slow way
        provider = _trace.get_tracer_provider()
    if provider is None or isinstance(provider, _trace.ProxyTracerProvider | _trace.NoOpTracerProvider):
        return None
    if _cached[0] is not provider:
        _cached = (provider, provider.get_tracer(TRACER_NAME))
    return _cached[1]


def span(
    name: str,
    attributes: Mapping[str, AttrValue | None] | None = None,
    *,
    kind: Literal["internal", "client"] = "internal",
) -> AbstractContextManager[SpanHandle]:
    """A span around the block, current for it (spans opened inside, and in tasks it starts,
    are its children). An exception leaving the block marks it failed with its fault class
    (`fault_kind`; cancellation is `cancelled`)."""
    tracer = _tracer()
    if tracer is None:
        return _OFF_BLOCK
    return _live(tracer, name, attributes, kind, SpanHandle)


H = TypeVar("H", bound=SpanHandle)


@contextlib.contextmanager
def _live(
    tracer: Any,
    name: str,
    attributes: Mapping[str, AttrValue | None] | None,
    kind: str,
    handle_of: Callable[[Any], H],
) -> Iterator[H]:
    """A recording span, current for the block; an exception leaving it marks it failed."""
    with tracer.start_as_current_span(
        name,
        kind=SpanKind.CLIENT if kind == "client" else SpanKind.INTERNAL,
        attributes={k: v for k, v in (attributes or {}).items() if v is not None},
        record_exception=False,
        set_status_on_exception=False,
    ) as raw:
        handle = handle_of(raw)
        try:
            yield handle
        except BaseException as exc:
            if isinstance(exc, GeneratorExit):
                raise
            handle.error("cancelled" if _is_cancel(exc) else fault_kind(exc), str(exc))
            raise


def _is_cancel(exc: BaseException) -> bool:
    import asyncio

    return isinstance(exc, asyncio.CancelledError)


def capture_content(env: Mapping[str, str] | None = None) -> bool:
    """Is the GenAI content-capture switch on?"""
    return (env if env is not None else os.environ).get(CAPTURE_CONTENT_ENV, "").strip().lower() in _TRUE


def _messages_json(request: ChatRequest) -> str:
    return json.dumps(
        [{"role": m.role, "parts": [{"type": "text", "content": m.content}]} for m in request.messages],
        ensure_ascii=False,
    )


def _output_json(response: ChatResponse) -> str:
    return json.dumps(
        [
            {
                "role": "assistant",
                "parts": [{"type": "text", "content": response.text}],
                "finish_reason": response.finish_reason or "stop",
            }
        ],
        ensure_ascii=False,
    )


class ModelCallSpan(SpanHandle):
    """A model-call span: request attributes at the start, the answer and its record at the end."""

    __slots__ = ("_content",)

    def __init__(self, raw: Any, content: bool) -> None:
        super().__init__(raw)
        self._content = content

    def request(self, request: ChatRequest) -> None:
        if self._span is None:
            return
        self.set(
            {
                "gen_ai.request.max_tokens": request.max_tokens,
                "gen_ai.request.temperature": request.temperature,
                "gen_ai.output.type": "json" if request.json_schema is not None else "text",
            }
        )
        if self._content:
            self.set({"gen_ai.input.messages": _messages_json(request)})

    def response(self, response: ChatResponse) -> None:
        if self._span is None:
            return
        self.set(
            {
                "gen_ai.response.model": response.model or None,
                "gen_ai.response.finish_reasons": [response.finish_reason]
                if response.finish_reason
                else None,
            }
        )
        if self._content:
            self.set({"gen_ai.output.messages": _output_json(response)})

    def record(self, record: CallRecord) -> None:
        """Tokens, cost and outcome from the call's ledger record (the one source of them)."""
        if self._span is None:
            return
        self.set(
            {
                "gen_ai.usage.input_tokens": record.input_tokens,
                "gen_ai.usage.output_tokens": record.output_tokens,
                "gen_ai.usage.cache_read.input_tokens": record.cached_tokens,
                "gen_ai.usage.reasoning.output_tokens": record.reasoning_tokens,
                "courseforge.finish_reason": record.finish_reason or None,
                "courseforge.native_finish_reason": record.native_finish_reason or None,
                "courseforge.cost_usd": float(record.cost_usd),
                "courseforge.cost_source": record.cost_source,
                "courseforge.outcome": record.outcome,
                "courseforge.latency_ms": record.latency_ms,
                "courseforge.replayed": record.replayed,
                "courseforge.cached": is_cached(record),
                "courseforge.reason": record.reason[:300] or None,
            }
        )


def model_call_span(
    *,
    model_id: str,
    provider: str,
    request_model: str,
    phase: str,
    task: str,
    tier: str,
    attempt: int,
    round: int = 0,
    fallback_for: str = "",
) -> AbstractContextManager[ModelCallSpan]:
    """The span of one call to one model (`chat {request_model}`, kind CLIENT). A provider
    error leaving the block sets `error.type` to its fault class (`http_503`, `timeout`, ...)."""
    tracer = _tracer()
    if tracer is None:
        return _OFF_CALL_BLOCK
    attributes: dict[str, AttrValue] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": provider,
        "gen_ai.request.model": request_model,
        "courseforge.model_id": model_id,
        "courseforge.phase": phase,
        "courseforge.task": task,
        "courseforge.tier": tier,
        "courseforge.attempt": attempt,
        "courseforge.round": round,
        # The routing decision that put this call on this model: the task's tier, or a fallback.
        "courseforge.routing.decision": f"fallback for {fallback_for}" if fallback_for else "tier",
    }
    return _live(tracer, f"chat {request_model}", attributes, "client", _call_handle)


def _call_handle(raw: Any) -> ModelCallSpan:
    return ModelCallSpan(raw, raw.is_recording() and capture_content())


_OFF_CALL_BLOCK = contextlib.nullcontext(ModelCallSpan(None, False))


def tracing_wanted(env: Mapping[str, str]) -> str | None:
    """The exporter the environment asks for (`otlp`, `console`), or None: tracing stays off."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() in _TRUE:
        return None
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        first = exporter.split(",")[0].strip()
        return first if first in ("otlp", "console") else None
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    return "otlp" if endpoint else None


def configure_tracing(
    env: Mapping[str, str] | None = None, *, say: Callable[[str], object] | None = None
) -> Callable[[], None]:
    """Install the SDK tracer provider the environment asks for (see the module docstring);
    returns the function that flushes and stops it (call it before the process exits). With
    tracing off, or the packages missing, nothing is installed and the function does nothing."""
    env = os.environ if env is None else env
    wanted = tracing_wanted(env)
    if wanted is None:
        return lambda: None
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
    except ImportError:
        if say is not None:
            say("traces: OTEL_* asks for traces but opentelemetry is not installed (the service extra)")
        return lambda: None
    exporter: SpanExporter
    if wanted == "console":
        exporter = ConsoleSpanExporter()
    else:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            if say is not None:
                say("traces: the OTLP/HTTP exporter is not installed (the service extra)")
            return lambda: None
        protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        if protocol and protocol != "http/protobuf":
            log.warning("traces: OTLP protocol %s is not supported; sending http/protobuf", protocol)
        # The exporter reads the rest (headers, timeout, compression) from the process's OTEL_*.
        endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        if not endpoint and env.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
            endpoint = env["OTEL_EXPORTER_OTLP_ENDPOINT"].rstrip("/") + "/v1/traces"
        exporter = OTLPSpanExporter(endpoint=endpoint or None)
    named = "OTEL_SERVICE_NAME" in os.environ or "service.name=" in os.environ.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    )
    resource = Resource.create({} if named else {"service.name": "courseforge"})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    assert _trace is not None
    _trace.set_tracer_provider(provider)
    if say is not None:
        say(f"traces: exporting with {wanted} ({type(exporter).__name__})")
    return provider.shutdown
