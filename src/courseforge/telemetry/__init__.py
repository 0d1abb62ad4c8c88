"""What a running course shows the outside: OpenTelemetry traces and Prometheus metrics.

`tracing`: spans course → phase → task → model call (GenAI semantic conventions), off unless
the standard `OTEL_*` variables turn them on. `metrics`: per-call and per-course Prometheus
metrics, a hook on the engine's events. Neither ever fails a course.
"""

from .tracing import (
    CAPTURE_CONTENT_ENV,
    TRACER_NAME,
    ModelCallSpan,
    SpanHandle,
    capture_content,
    configure_tracing,
    is_cached,
    model_call_span,
    span,
    tracing_wanted,
)

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
