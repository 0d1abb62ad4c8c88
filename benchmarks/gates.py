"""Gate throughput, and every gate's precision/recall on the outside labelled set.

    .venv/bin/python benchmarks/gates.py [--model all-MiniLM-L6-v2|hashing]
    .venv/bin/python benchmarks/gates.py outside [--model M ...] [--profile P ...] [--boot N]
                                                 [--dtype auto|float32|bfloat16]

`outside` is documented in benchmarks/outside_gates.py (issue 24). Without it:

A 12-lesson course is written by the scripted CourseAuthor (no model), then every gate that
needs no LLM (length, exercises, similarity, safety, grounding, redundancy, outcomes, coverage,
completeness) runs over it via `check_course` — the same work the pipeline's gates do per
accepted lesson, plus phase 4. The embedding model is loaded (warmed) before timing; the cache
starts cold each round, so every lesson is embedded for real.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from courseforge.config import Settings, load_config
from courseforge.domain import AnalysisResult
from courseforge.engine import Engine
from courseforge.pipeline import validate_analysis
from courseforge.pipeline.check import check_course
from courseforge.providers.embeddings import CachedEmbedder, HashingEmbedder, make_embedder
from courseforge.quality.safety import SafetyGate
from courseforge.testing import CourseAuthor, ScriptedModel

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _hosted() -> Settings:
    """The bundled hosted profile, gated with the hashing embedder (fast, no torch)."""
    settings = load_config("hosted", env={"OPENROUTER_API_KEY": "bench-key"}).settings
    return settings.model_copy(
        update={"gates": settings.gates.model_copy(update={"embedding_model": "hashing"})}
    )


def _example(name: str) -> AnalysisResult:
    return validate_analysis(
        {**json.loads((EXAMPLES / f"{name}.json").read_text("utf-8")), "min_lessons": 12}
    )


async def main(model: str, rounds: int, example: str) -> None:
    settings = _hosted()
    analysis = _example(example)
    models = {m: ScriptedModel(CourseAuthor(), model_id=m) for m in settings.models}
    engine = Engine(settings, env={}, models=models, embedder=CachedEmbedder(HashingEmbedder()))
    course = (await engine.generate(analysis)).course
    await engine.aclose()
    assert course is not None
    n = len(course.lessons())
    gates = settings.gates.model_copy(update={"embedding_model": model})
    settings = settings.model_copy(update={"gates": gates})
    warm = make_embedder(model)
    await warm.warm()
    SafetyGate().check("warm the classifier", None)  # type: ignore[arg-type]
    times = []
    for _ in range(rounds):
        embedder = make_embedder(model)  # cold cache, warm model
        started = time.perf_counter()
        await check_course(course, analysis, settings, embedder)
        times.append(time.perf_counter() - started)
    best, median = min(times), statistics.median(times)
    print(f"{example}, embedding model {model}: {n} lessons, {rounds} rounds")
    print(f"gates per course: median {median:.3f} s (best {best:.3f} s)")
    print(f"throughput: {n / median:.1f} lessons/s")
    print(f"time the gates add to a 12-lesson course: {median * 12 / n:.3f} s")


def outside(argv: list[str]) -> None:
    from outside_gates import print_report, run

    parser = argparse.ArgumentParser(prog="gates.py outside")
    parser.add_argument("--model", action="append", help="embedding model (repeatable)")
    parser.add_argument("--profile", action="append", help="profile whose policy judges (repeatable)")
    parser.add_argument("--boot", type=int, default=1000, help="bootstrap resamples (seed 24)")
    parser.add_argument("--cache", type=Path, default=Path("~/.cache/courseforge/bench-embeddings.sqlite"))
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--margins",
        type=Path,
        help="write the first run's rival-margin rows here (courseforge calibrate JSONL)",
    )
    parser.add_argument("--cpu", action="store_true", help="only: CPU per embedded chunk, per model")
    parser.add_argument(
        "--dtype",
        choices=("auto", "float32", "bfloat16"),
        default="auto",
        help="gates.embedding_dtype of the embedder (auto: bfloat16 where the CPU has it, as generation)",
    )
    parser.add_argument(
        "--titled",
        choices=("yes", "no"),
        help="override the thresholds' `titled` (outcomes embedded as 'lesson title: outcome')",
    )
    parser.add_argument(
        "--held-out",
        metavar="RULE",
        help="also score every source with similarity thresholds calibrated on the other two: "
        "a number (courseforge calibrate --max-false-alarms RULE, e.g. 0.05) or 'balanced' "
        "(calibrate --balanced, each criterion on the defect it is for)",
    )
    parser.add_argument(
        "--calibration-rows",
        type=Path,
        metavar="DIR",
        help="write the first run's DIR/absolute.jsonl (real vs off-topic scores) and "
        "DIR/margin.jsonl (real vs related margins) for courseforge calibrate --balanced",
    )
    args = parser.parse_args(argv)
    if args.cpu:
        from outside_gates import embedding_cpu

        asyncio.run(embedding_cpu(args.model or ["all-MiniLM-L6-v2", "all-mpnet-base-v2"]))
        return
    report = asyncio.run(
        run(
            args.model or ["all-MiniLM-L6-v2"],
            args.profile or ["hosted", "offline"],
            args.boot,
            args.cache.expanduser(),
            None if args.titled is None else args.titled == "yes",
            args.held_out if args.held_out in (None, "balanced") else float(args.held_out),
            args.dtype,
        )
    )
    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1), "utf-8")
    if args.calibration_rows:
        args.calibration_rows.mkdir(parents=True, exist_ok=True)
        for name, rows in report["runs"][0]["calibration_rows"].items():
            (args.calibration_rows / f"{name}.jsonl").write_text(
                "".join(
                    json.dumps({"score": s, "label": "good" if g else "bad", "gate": "similarity"}) + "\n"
                    for s, g in rows
                ),
                "utf-8",
            )
    if args.margins:
        rows = report["runs"][0]["margins"]
        args.margins.write_text(
            "".join(json.dumps({**r, "gate": "similarity"}) + "\n" for r in rows), "utf-8"
        )


if __name__ == "__main__":
    if sys.argv[1:2] == ["outside"]:
        outside(sys.argv[2:])
        sys.exit(0)
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--example", default="photosynthesis-sourced", help="python-basics: no sources, no grounding"
    )
    args = parser.parse_args()
    asyncio.run(main(args.model, args.rounds, args.example))
