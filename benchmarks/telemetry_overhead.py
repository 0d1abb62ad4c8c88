"""CPU per model call with traces and metrics on, against the same run with both off.

Each variant runs in its own child process (a process's OpenTelemetry tracer provider can be
set only once), the variants interleaved `--runs` times so each sees the same machine load:

- `off`: the default — no tracer provider, no metrics hook (the baseline);
- `metrics`: `telemetry.CallMetrics` hooked on the engine (every call counted as recorded);
- `traces`: an SDK tracer provider with a batch processor and an exporter that drops spans
  (the cost of making the spans, not of shipping them);
- `both`.

A child measures two figures, process CPU (`time.process_time()`, every thread) per model call:

- `metered`: `--calls` calls of `CourseCalls.call` one after another on a scripted model that
  answers at once (no HTTP, no gates: the metered call alone — ledger, record, span, metrics —
  where instrumentation weighs most);
- `course`: after one unmeasured course, `--courses` courses on one engine with scripted models
  (`CourseAuthor`; every gate, the hashing embedder): the instrumentation against a course's
  whole CPU.

The variants' order rotates from run to run. Printed: per variant and figure the median µs per
call and its ratio to `off`'s median.

    python benchmarks/telemetry_overhead.py [--runs 3] [--calls 3000] [--courses 2] [--example PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_EXAMPLE = ROOT / "examples" / "python-basics.json"
VARIANTS = ("off", "metrics", "traces", "both")


def _install_tracing() -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class Drop(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Drop()))
    trace.set_tracer_provider(provider)


async def _metered(settings: Any, calls: int) -> float:
    from courseforge.domain.tasks import TaskId
    from courseforge.engine import CourseCalls, Runtime
    from courseforge.ledger import Ledger
    from courseforge.providers import ChatRequest, Message
    from courseforge.providers.effects import CallSpec
    from courseforge.providers.embeddings import HashingEmbedder
    from courseforge.testing import ScriptedModel

    model = ScriptedModel(lambda r: '{"answer": "42"}', model_id=settings.routing.tiers["cheap"])
    return await _timed_calls(settings, model, calls, CourseCalls, Runtime, Ledger, HashingEmbedder,
                              ChatRequest([Message("user", "What is 6 x 7?")], max_tokens=20), CallSpec, TaskId)  # fmt: skip


async def _timed_calls(settings: Any, model: Any, calls: int, *types: Any) -> float:
    course_calls, runtime_type, ledger_type, embedder_type, request, spec_type, task_id = types
    runtime = runtime_type(chains={model.model_id: [model]}, embedder=embedder_type(), hooks=_HOOKS[0])
    metered = course_calls(settings, runtime, ledger_type(settings.budget.per_course_usd * 1000))
    spec = spec_type("metadata", task_id("metadata_extras"), "cheap", 1, request)
    for _ in range(200):  # warm-up
        await metered.call(spec)
    cpu = time.process_time()
    for _ in range(calls):
        await metered.call(spec)
    return (time.process_time() - cpu) / calls * 1e6


_HOOKS: list[Any] = [None]


async def _child(variant: str, courses: int, example: Path, calls: int) -> dict[str, Any]:
    from courseforge.config import load_config
    from courseforge.engine import Engine
    from courseforge.pipeline import parse_analysis
    from courseforge.providers.embeddings import CachedEmbedder, HashingEmbedder
    from courseforge.telemetry.metrics import CallMetrics
    from courseforge.testing import CourseAuthor, ScriptedModel

    if variant in ("traces", "both"):
        _install_tracing()
    settings = load_config("hosted", env={"OPENROUTER_API_KEY": "bench"}).settings
    settings = settings.model_copy(
        update={"gates": settings.gates.model_copy(update={"embedding_model": "hashing"})}
    )
    analysis = parse_analysis(example.read_bytes(), max_bytes=settings.max_input_bytes)
    models = {m: ScriptedModel(CourseAuthor(), model_id=m) for m in settings.models}
    engine = Engine(settings, env={}, models=models, embedder=CachedEmbedder(HashingEmbedder()))
    from courseforge.resilience import no_hooks

    _HOOKS[0] = no_hooks
    if variant in ("metrics", "both"):
        metrics = CallMetrics()
        engine.add_hook(metrics)
        _HOOKS[0] = metrics
    metered_us = await _metered(settings, calls)
    try:
        await engine.generate(analysis)  # warm-up: imports, caches, the gates' word lists
        n_calls = 0
        cpu = time.process_time()
        for _ in range(courses):
            result = await engine.generate(analysis)
            n_calls += len(result.report.calls)
        cpu = time.process_time() - cpu
    finally:
        await engine.aclose()
    return {"variant": variant, "calls": n_calls, "course": cpu / n_calls * 1e6, "metered": metered_us}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--courses", type=int, default=2)
    parser.add_argument("--example", type=Path, default=DEFAULT_EXAMPLE)
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(_child(args.child, args.courses, args.example, args.calls))))
        return
    figures: dict[tuple[str, str], list[float]] = {}
    for run in range(args.runs):
        order = VARIANTS[run % len(VARIANTS) :] + VARIANTS[: run % len(VARIANTS)]
        for variant in order:
            done = subprocess.run(
                [sys.executable, __file__, "--child", variant, "--courses", str(args.courses),
                 "--calls", str(args.calls), "--example", str(args.example)],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            row = json.loads(done.stdout.strip().splitlines()[-1])
            for figure in ("metered", "course"):
                figures.setdefault((variant, figure), []).append(row[figure])
            print(
                f"run {run + 1} {variant:8s} metered {row['metered']:7.1f} µs/call   "
                f"course {row['course']:8.1f} µs/call ({row['calls']} calls)"
            )
    print(f"\nCPU per model call, median of {args.runs} runs:")
    for figure, what in (("metered", f"{args.calls} metered calls"), ("course", f"{args.courses} courses")):
        base = statistics.median(figures["off", figure])
        print(f"  {figure} ({what}):")
        for variant in VARIANTS:
            median = statistics.median(figures[variant, figure])
            print(f"    {variant:8s} {median:8.1f} µs   {median / base:5.2f} x off")


if __name__ == "__main__":
    main()
