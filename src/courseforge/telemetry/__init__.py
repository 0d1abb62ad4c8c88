"""What a running course shows the outside: OpenTelemetry traces and Prometheus metrics.

`tracing`: spans course → phase → task → model call (GenAI semantic conventions), off unless
the standard `OTEL_*` variables turn them on. `metrics` (imported on its own, it needs
`prometheus_client`): per-call and per-course Prometheus metrics, a hook on the engine's
events. Neither ever fails a course.
"""

from .tracing import ModelCallSpan, SpanHandle, configure_tracing, is_cached, model_call_span, span

__all__ = ["ModelCallSpan", "SpanHandle", "configure_tracing", "is_cached", "model_call_span", "span"]
