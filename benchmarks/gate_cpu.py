"""Gate CPU: CPU seconds per course spent by each gate, and the embedding model's settings.

`benchmarks/pipeline_overlap.py`'s loopback provider (a spawned process answering every call
after `--delay` seconds with `CourseAuthor` text) serves each bundled example through the real
engine with all-MiniLM-L6-v2 gates. Three configurations of the embedder alternate in one
process, warm, `--runs` times each (the machine is shared: all see the same load, compare their
ratios), each with one torch thread and batches of 16 (`gates.embedding_threads`,
`gates.embedding_batch_size`, issue 29's fourth session):

- serial fp32: one encode at a time, float32 (the fourth session's code);
- per core fp32: a waiting batch dealt into one part per core, encoded side by side;
- per core bf16: the same, the matrix products in bfloat16 (`gates.embedding_dtype: auto` on a
  CPU with bfloat16 instructions; the defaults now).

Printed per example and configuration (medians): this process's CPU seconds per course
(`time.process_time()`, every thread, torch's included; the provider is elsewhere), wall,
critical path and wall / critical path.

Then the per-gate table: every text the gates asked to embed is attributed to the gate that
asked for it first (read from the caller's frames: similarity, grounding, cross-artifact
checks, redundancy, retrieval of source excerpts, metadata checks, self-consistency), and each
gate's texts are encoded apart, uncached, under each configuration (CPU seconds per course);
the safety gate (PII patterns, word list, toxicity classifier) is timed on the course's lessons.

    python benchmarks/gate_cpu.py [--runs 2] [--delay 0.5] [--example PATH ...]

`--baseline REV` (the issue's baseline is bc1ac86, where it measured its CPU) compares whole
versions instead: REV is checked out with `git worktree add --detach` in a temporary directory,
and every course runs in a process of its own, spawned with `PYTHONPATH` at REV's `src` or at
this checkout's, the two alternating (which goes first alternates too), against the same
loopback provider. Each process loads the model and runs its example twice through a fresh
`Engine`: "cold" is the process's whole user+sys CPU (imports, model and classifier loads, the
first course), "warm" the second course's own CPU, as a service pays it. Printed: medians per
example and version, and now / REV.

    python benchmarks/gate_cpu.py --baseline bc1ac86 [--runs 2] [--delay 0.5] [--example PATH ...]

`--dtype-check` runs every embedding gate of the labelled set (tests/quality/data/labelled.jsonl:
similarity, lesson and exercise redundancy, grounding) with the model in float32 and in
bfloat16, and prints how many verdicts differ and how far the scores moved.

    python benchmarks/gate_cpu.py --dtype-check
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from pipeline_overlap import EXAMPLES, author_server, hosted_settings

from courseforge.config import Settings
from courseforge.engine import Engine
from courseforge.pipeline import parse_analysis
from courseforge.providers.base import Embedder, Vector
from courseforge.providers.embeddings import MINILM, CachedEmbedder, SentenceTransformerEmbedder
from courseforge.quality import GateContext
from courseforge.quality.lesson_gates import safety_gate

#: name -> (encodes side by side (None: one per core), dtype)
CONFIGS: dict[str, tuple[int | None, str]] = {
    "serial fp32": (1, "float32"),
    "per core fp32": (None, "float32"),
    "per core bf16": (None, "bfloat16"),
}

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


def _encoder(workers: int | None, dtype: str) -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(MINILM, batch_size=16, threads=1, workers=workers, dtype=dtype)


async def _course(
    settings: Settings, env: dict[str, str], example: bytes, workers: int | None = None, dtype: str = "auto"
) -> tuple[dict[str, float], Engine]:
    embedder = AttributingEmbedder(CachedEmbedder(_encoder(workers, dtype)))
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


def _encode_cpu(texts: list[str], workers: int | None, dtype: str) -> float:
    embedder = _encoder(workers, dtype)
    cpu0 = time.process_time()
    asyncio.run(embedder._encode_parts(texts))
    return time.process_time() - cpu0


def _med(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def _bench_example(settings: Settings, env: dict[str, str], example: Path, runs: int) -> None:
    data = example.read_bytes()
    rows: dict[str, list[dict[str, float]]] = {name: [] for name in CONFIGS}
    attributed: dict[str, str] = {}
    for _ in range(runs):
        for name, (workers, dtype) in CONFIGS.items():
            figures, engine = asyncio.run(_course(settings, env, data, workers, dtype))
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
    first, *others = CONFIGS
    print(
        "  CPU per course against "
        + first
        + ": "
        + ", ".join(f"{name} {cpu_by[name] / cpu_by[first]:.2f}" for name in others)
    )
    by_gate: dict[str, list[str]] = {}
    for text, gate in attributed.items():
        by_gate.setdefault(gate, []).append(text)
    print("  per gate (texts first asked for by it, encoded apart; CPU s per course):")
    print(f"  {'gate':16s} {'texts':>5s} " + " ".join(f"{n:>13s}" for n in CONFIGS))
    for gate, texts in sorted(by_gate.items(), key=lambda kv: -len(kv[1])):
        cpus = [_encode_cpu(texts, w, d) for w, d in CONFIGS.values()]
        print(f"  {gate:16s} {len(texts):5d} " + " ".join(f"{c:13.2f}" for c in cpus))
    safety = _med([f["safety"] for figs in rows.values() for f in figs])
    print(f"  {'safety (no model)':16s} {'':5s} {safety:13.3f} (PII, word list, toxicity classifier)")


REPO = Path(__file__).resolve().parent.parent

# The course process of `--baseline`: only the API both versions share (load_config, Engine,
# parse_analysis), so the same code runs on REV's src and on this checkout's.
_CHILD = """
import asyncio, json, os, resource, sys, time
from pathlib import Path
from courseforge.config import load_config
from courseforge.engine import Engine
from courseforge.pipeline import parse_analysis

env = {k: os.environ[k] for k in ("OPENROUTER_API_KEY", "OPENROUTER_BASE_URL")}
settings = load_config("hosted", env=env).settings
gates = settings.gates.model_copy(update={"embedding_model": "all-MiniLM-L6-v2"})
settings = settings.model_copy(update={"gates": gates})
data = Path(sys.argv[1]).read_bytes()

def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime

async def course():
    engine = Engine(settings, env=env)
    try:
        return await engine.generate(parse_analysis(data, max_bytes=10**7))
    finally:
        await engine.aclose()

figures = {}
for name in ("cold", "warm"):
    cpu0 = cpu()
    report = asyncio.run(course()).report
    figures[name] = {
        "cpu": cpu() - cpu0, "calls": len(report.calls), "status": report.status,
        "wall": report.wall_time_s, "critical": report.critical_path_s,
    }
figures["process_cpu"] = cpu()
print(json.dumps(figures))
"""


def _spawn_course(src: Path, example: Path, env: dict[str, str]) -> dict[str, float | str]:
    """One course process on `src`; its figures, and its whole user+sys CPU seen by the parent."""
    child_env = {**os.environ, **env, "PYTHONPATH": str(src)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(example)],
        env=child_env,
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        raise SystemExit(f"course process on {src} failed:\n{out.stderr[-3000:]}")
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    warm = figures["warm"]
    return {
        "process": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "cold": figures["cold"]["cpu"],
        "warm": warm["cpu"],
        "calls": warm["calls"],
        "status": warm["status"],
        "wall": warm["wall"],
        "critical": warm["critical"],
    }


def _baseline(rev: str, examples: Sequence[Path], runs: int, delay: float) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="gate-cpu-"))
    tree = tmp / "baseline"
    subprocess.run(
        ["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree), rev],
        check=True,
        capture_output=True,
    )
    srcs = {rev: tree / "src", "now": REPO / "src"}
    rows: dict[tuple[str, str], list[dict[str, float | str]]] = {}
    try:
        with author_server(delay) as env:
            for run in range(runs):
                order = list(srcs.items()) if run % 2 == 0 else list(reversed(srcs.items()))
                for example in examples:
                    for name, src in order:
                        fig = _spawn_course(src, example, env)
                        rows.setdefault((example.name, name), []).append(fig)
                        print(
                            f"  run {run + 1} {example.name:28s} {name:8s} {fig['status']:12s} "
                            f"calls {fig['calls']}, process CPU {fig['process']:.2f} s, "
                            f"cold course {fig['cold']:.2f} s, warm course {fig['warm']:.2f} s, "
                            f"wall {fig['wall']:.2f} s, critical {fig['critical']:.2f} s",
                            flush=True,
                        )
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], check=False)
        tmp.rmdir()
    _print_baseline(rows, rev, [e.name for e in examples], runs)


def _print_baseline(
    rows: dict[tuple[str, str], list[dict[str, float | str]]], rev: str, names: Sequence[str], runs: int
) -> None:
    def med(key: tuple[str, str], field: str) -> float:
        return _med([float(f[field]) for f in rows[key]])

    print(f"medians of {runs} run(s), {rev} and now alternating, one process per course:")
    head = (
        f"  {'example':28s} {'version':8s} {'calls':>5s} {'process CPU s':>13s} {'warm course CPU s':>17s} "
        f"{'wall s':>7s} {'critical s':>10s} {'wall/crit':>9s}"
    )
    print(head)
    totals = {name: [0.0, 0.0] for name in (rev, "now")}
    for example in names:
        for name in (rev, "now"):
            key = (example, name)
            ratio = _med([float(f["wall"]) / float(f["critical"]) for f in rows[key]])
            totals[name][0] += med(key, "process")
            totals[name][1] += med(key, "warm")
            print(
                f"  {example:28s} {name:8s} {med(key, 'calls'):5g} {med(key, 'process'):13.2f} "
                f"{med(key, 'warm'):17.2f} {med(key, 'wall'):7.2f} {med(key, 'critical'):10.2f} {ratio:9.2f}"
            )
        print(
            f"  {example:28s} now / {rev}: process CPU "
            f"{med((example, 'now'), 'process') / med((example, rev), 'process'):.2f}, warm course CPU "
            f"{med((example, 'now'), 'warm') / med((example, rev), 'warm'):.2f}"
        )
    (p_base, w_base), (p_now, w_now) = totals[rev], totals["now"]
    print(
        f"  all examples, summed medians: process CPU {p_base:.2f} -> {p_now:.2f} s ({p_now / p_base:.2f}), "
        f"warm course CPU {w_base:.2f} -> {w_now:.2f} s ({w_now / w_base:.2f})"
    )


LABELLED = REPO / "tests" / "quality" / "data" / "labelled.jsonl"


async def _labelled_verdicts(embedder: Embedder) -> dict[str, tuple[object, float]]:
    """Each labelled item's verdict and score (the gates' own code, as tests/quality/test_labelled.py)."""
    from courseforge.config import load_config
    from courseforge.quality import SimilarityGate, lesson_similarity
    from courseforge.quality.grounding import ground_claims
    from courseforge.quality.redundancy import find_duplicates, text_vectors

    items = [json.loads(line) for line in LABELLED.read_text("utf-8").splitlines() if line.strip()]
    gates = load_config("hosted", env={}).settings.gates
    out: dict[str, tuple[object, float]] = {}
    similarity = SimilarityGate(gates.similarity[MINILM])
    rs = gates.redundancy
    grounding = [r for r in items if r["gate"] == "grounding"]
    for i, r in enumerate(items):
        if r["gate"] == "similarity":
            values = await lesson_similarity(r["content"], {"LO1": r["outcome"]}, embedder)
            verdict = similarity.check(None, GateContext(values=values)).verdict
            out[f"similarity {i}"] = (verdict, float(values["similarity"]))
        elif r["gate"] in ("redundancy", "redundancy_exercise"):
            lesson = r["gate"] == "redundancy"
            pair = [r["a"], r["b"]]
            vecs = await text_vectors(pair, embedder) if lesson else await embedder.embed(pair)
            dups = find_duplicates(
                [("A", r["a"]), ("B", r["b"])],
                vecs,
                cosine_at=(rs.lesson_cosine if lesson else rs.exercise_cosine)[MINILM],
                lexical_at=rs.lesson_lexical if lesson else rs.exercise_lexical,
                **({"distinct_facts": rs.lesson_distinct_facts} if lesson else {"kind": "exercise"}),
            )
            out[f"{r['gate']} {i}"] = (bool(dups), sum(x * y for x, y in zip(*vecs, strict=True)))
    gs = gates.grounding
    support = await ground_claims(
        [r["claim"] for r in grounding],
        grounding[0]["sources"],
        embedder,
        supported=gs.supported[MINILM],
        unsupported=gs.unsupported[MINILM],
    )
    for i, claim in enumerate(support):
        out[f"grounding {i}"] = (claim.status, claim.cosine)
    return out


def _dtype_check() -> None:
    exact = asyncio.run(_labelled_verdicts(CachedEmbedder(_encoder(1, "float32"))))
    bf16 = asyncio.run(_labelled_verdicts(CachedEmbedder(_encoder(1, "bfloat16"))))
    differ = [k for k in exact if exact[k][0] != bf16[k][0]]
    moved = sorted(abs(exact[k][1] - bf16[k][1]) for k in exact)
    print(
        f"labelled items through an embedding gate: {len(exact)}; verdicts that differ: {len(differ)} {differ}"
    )
    print(f"score |float32 - bfloat16|: max {moved[-1]:.4f}, median {statistics.median(moved):.5f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--delay", type=float, default=0.5, help="seconds every call takes (0.5)")
    parser.add_argument("--runs", type=int, default=2, help="runs per configuration (2)")
    parser.add_argument(
        "--example", type=Path, action="append", help="course input (default: every bundled one)"
    )
    parser.add_argument(
        "--baseline", metavar="REV", help="compare whole versions: REV against this checkout (bc1ac86)"
    )
    parser.add_argument(
        "--dtype-check", action="store_true", help="only: labelled-set verdicts in float32 and bfloat16"
    )
    args = parser.parse_args()
    if args.dtype_check:
        _dtype_check()
        return
    examples = args.example or sorted(EXAMPLES.glob("*.json"))
    if args.baseline:
        _baseline(args.baseline, [e.resolve() for e in examples], args.runs, args.delay)
        return
    with author_server(args.delay) as env:
        settings = hosted_settings(env, MINILM)
        print("warming: one course loads torch, the model and the safety classifier (not counted)")
        asyncio.run(_course(settings, env, examples[0].read_bytes()))
        for example in examples:
            _bench_example(settings, env, example, args.runs)


if __name__ == "__main__":
    main()
