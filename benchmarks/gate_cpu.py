"""Gate CPU: CPU seconds per course spent by each gate, and the embedding model's settings.

`benchmarks/pipeline_overlap.py`'s loopback provider (a spawned process answering every call
after `--delay` seconds with `CourseAuthor` text) serves each bundled example through the real
engine with all-MiniLM-L6-v2 gates. Two configurations alternate in one process, warm, `--runs`
times each (the machine is shared: both see the same load, compare their ratio):

- before: `gates.embedding_threads: 2`, `gates.embedding_batch_size: 32` (main before issue 29:
  torch's default of one thread per core, batches of 32);
- after: the defaults, 1 thread and batches of 16.

Printed per example and configuration (medians): this process's CPU seconds per course
(`time.process_time()`, every thread, torch's included; the provider is elsewhere), wall,
critical path and wall / critical path.

Then the per-gate table: every text the gates asked to embed is attributed to the gate that
asked for it first (read from the caller's frames: similarity, grounding, cross-artifact
checks, redundancy, retrieval of source excerpts, metadata checks, self-consistency), and each
gate's texts are encoded apart, uncached, under each configuration (CPU seconds per course);
the safety gate (PII patterns, word list, toxicity classifier) is timed on the course's lessons.

    python benchmarks/gate_cpu.py [--runs 2] [--delay 0.5] [--example PATH ...]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from pipeline_overlap import EXAMPLES, author_server, hosted_settings

from courseforge.config import Settings
from courseforge.engine import Engine
from courseforge.pipeline import parse_analysis
from courseforge.providers.base import Embedder, Vector
from courseforge.providers.embeddings import MINILM, SentenceTransformerEmbedder, make_embedder
from courseforge.quality import GateContext
from courseforge.quality.lesson_gates import safety_gate

CONFIGS = {"before (2 threads, batch 32)": (2, 32), "after (1 thread, batch 16)": (1, 16)}

# Caller function name -> gate, looked up innermost frame first.
_GATES = {
    "cross_artifact_flags": "cross-artifact",
    "lesson_similarity": "similarity",
    "ground_claims": "grounding",
    "course_duplicates": "redundancy",
    "text_vectors": "redundancy",
    "source_index": "retrieval",
    "select_excerpts": "retrieval",
    "sample_consistency": "consistency",
}


def _gate_of_caller() -> str:
    frame = sys._getframe(2)
    names = []
    while frame is not None:
        names.append(frame.f_code.co_name)
        frame = frame.f_back  # type: ignore[assignment]
    if "cross_artifact_flags" in names:
        return "cross-artifact"
    for name in names:
        if name in _GATES:
            return _GATES[name]
        if "metadata" in name or "outcome" in name or "placement" in name:
            return "metadata"
    return "other"


class AttributingEmbedder(Embedder):
    """Passes every call on, and notes each new text under the gate that first asked for it."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.name = inner.name
        self.dimensions = inner.dimensions
        self.texts: dict[str, str] = {}  # text -> gate

    async def warm(self) -> None:
        await self.inner.warm()

    async def embed(self, texts: Sequence[str]) -> list[Vector]:
        gate = _gate_of_caller()
        for text in texts:
            self.texts.setdefault(text, gate)
        return await self.inner.embed(texts)


def _configured(settings: Settings, threads: int, batch: int) -> Settings:
    gates = settings.gates.model_copy(update={"embedding_threads": threads, "embedding_batch_size": batch})
    return settings.model_copy(update={"gates": gates})


async def _course(settings: Settings, env: dict[str, str], example: bytes) -> tuple[dict[str, float], Engine]:
    gates = settings.gates
    embedder = AttributingEmbedder(
        make_embedder(
            gates.embedding_model, batch_size=gates.embedding_batch_size, threads=gates.embedding_threads
        )
    )
    engine = Engine(settings, env=env, embedder=embedder)
    try:
        cpu0 = time.process_time()
        result = await engine.generate(parse_analysis(example, max_bytes=10**7))
        cpu = time.process_time() - cpu0
    finally:
        await engine.aclose()
    r = result.report
    figures = {"cpu": cpu, "wall": r.wall_time_s, "critical": r.critical_path_s, "calls": len(r.calls)}
    figures["safety"] = _safety_cpu(settings, result.course)
    engine.attributed = embedder.texts  # type: ignore[attr-defined]
    return figures, engine


def _safety_cpu(settings: Settings, course: object) -> float:
    if course is None:
        return 0.0
    gate = safety_gate(settings)
    lessons = [lesson for section in course.sections for lesson in section.lessons]  # type: ignore[attr-defined]
    cpu0 = time.process_time()
    for lesson in lessons:
        gate.check(lesson, GateContext())
    return time.process_time() - cpu0


def _encode_cpu(texts: list[str], threads: int, batch: int) -> float:
    embedder = SentenceTransformerEmbedder(MINILM, batch_size=batch, threads=threads)
    cpu0 = time.process_time()
    embedder._encode(texts)
    return time.process_time() - cpu0


def _med(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def _bench_example(settings: Settings, env: dict[str, str], example: Path, runs: int) -> None:
    data = example.read_bytes()
    rows: dict[str, list[dict[str, float]]] = {name: [] for name in CONFIGS}
    attributed: dict[str, str] = {}
    for _ in range(runs):
        for name, (threads, batch) in CONFIGS.items():
            figures, engine = asyncio.run(_course(_configured(settings, threads, batch), env, data))
            attributed = engine.attributed  # type: ignore[attr-defined]
            rows[name].append(figures)
    print(f"{example.name}: {runs} run(s) per configuration, alternating; medians")
    print(
        f"  {'configuration':30s} {'calls':>5s} {'CPU s':>7s} {'wall s':>7s} {'critical s':>10s} {'wall/crit':>9s}"
    )
    cpu_by = {}
    for name, figs in rows.items():
        cpu_by[name] = _med([f["cpu"] for f in figs])
        print(
            f"  {name:30s} {_med([f['calls'] for f in figs]):5g} {cpu_by[name]:7.2f} "
            f"{_med([f['wall'] for f in figs]):7.2f} {_med([f['critical'] for f in figs]):10.2f} "
            f"{_med([f['wall'] / f['critical'] for f in figs]):9.2f}"
        )
    before, after = cpu_by.values()
    print(f"  CPU per course after / before: {after / before:.2f}")
    by_gate: dict[str, list[str]] = {}
    for text, gate in attributed.items():
        by_gate.setdefault(gate, []).append(text)
    print("  per gate (texts first asked for by it, encoded apart; CPU s per course):")
    print(f"  {'gate':16s} {'texts':>5s} " + " ".join(f"{n.split(' (')[0]:>8s}" for n in CONFIGS))
    for gate, texts in sorted(by_gate.items(), key=lambda kv: -len(kv[1])):
        cpus = [_encode_cpu(texts, t, b) for t, b in CONFIGS.values()]
        print(f"  {gate:16s} {len(texts):5d} " + " ".join(f"{c:8.2f}" for c in cpus))
    safety = _med([f["safety"] for figs in rows.values() for f in figs])
    print(f"  {'safety (no model)':16s} {'':5s} {safety:8.3f} (PII, word list, toxicity classifier)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--delay", type=float, default=0.5, help="seconds every call takes (0.5)")
    parser.add_argument("--runs", type=int, default=2, help="runs per configuration (2)")
    parser.add_argument(
        "--example", type=Path, action="append", help="course input (default: every bundled one)"
    )
    args = parser.parse_args()
    examples = args.example or sorted(EXAMPLES.glob("*.json"))
    with author_server(args.delay) as env:
        settings = hosted_settings(env, MINILM)
        print("warming: one course loads torch, the model and the safety classifier (not counted)")
        asyncio.run(_course(settings, env, examples[0].read_bytes()))
        for example in examples:
            _bench_example(settings, env, example, args.runs)


if __name__ == "__main__":
    main()
