"""Compare runs of the offline profiles: wall time, calls, escalation, gate figures and, with
`--judge`, an independent quality score of every lesson by the 1.5B model as judge.

    # one run per profile and example (each ~9-14 min on 2 cores), then:
    .venv/bin/courseforge generate examples/python-basics.json -c offline \\
        -o runs/offline-python-basics/course.json --report runs/offline-python-basics/report.json
    .venv/bin/courseforge generate examples/python-basics.json -c offline-cascade \\
        -o runs/offline-cascade-python-basics/course.json \\
        --report runs/offline-cascade-python-basics/report.json
    .venv/bin/python benchmarks/offline_profiles.py runs/* [--judge] [--lessons]

Each argument is a directory holding `course.json` and `report.json` of one run (named
`<profile>-<example>`). The table shows what the reports say; `--lessons` adds, per run, each phase's calls, output tokens and
span (its first call's start to its last call's end, from the report's call records) and each
lesson's words, exercises, output tokens per attempt and verdict. `--judge` then asks the offline
profile's premium model (Qwen2.5-Coder-1.5B) for the seeds' composite (0.6 correctness + 0.2
comprehensiveness + 0.2 readability, 1-5) of every lesson of every run, the same judge for all
runs, so the cascade's cheap-tier lessons are scored on the same scale as the default's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

from courseforge.config.loader import load_config
from courseforge.domain import Course, Report
from courseforge.engine import CourseCalls, Engine
from courseforge.ledger import Ledger
from courseforge.pipeline.assemble import draft_of
from courseforge.pipeline.judging import judge_lesson
from courseforge.pipeline.state import PipelineContext
from courseforge.quality.gates import word_count
from courseforge.quality.judge import composite


def _load(run: Path) -> tuple[Course, Report]:
    course = Course.model_validate(json.loads((run / "course.json").read_text()))
    report = Report.model_validate(json.loads((run / "report.json").read_text()))
    return course, report


def _row(run: Path, course: Course, report: Report) -> dict[str, Any]:
    q = report.quality
    lessons_by_model = Counter(x.final_model for x in report.lessons if x.final_model)
    return {
        "run": run.name,
        "status": report.status,
        "wall_s": round(report.wall_time_s, 1),
        "calls": len(report.calls),
        "tokens_out": sum(c.output_tokens for c in report.calls),
        "lessons": len(course.lessons()),
        "first_pass": q.first_attempt_pass_rate if q else None,
        "escalation": q.escalation_rate if q else None,
        "similarity": q.similarity_mean if q else None,
        "review_rate": q.human_review_rate if q else None,
        "flags": len(course.review),
        "final_models": dict(lessons_by_model),
    }


def _details(run: Path, course: Course, report: Report) -> None:
    """Per phase: calls, output tokens, span; per lesson: words, exercises, tokens, verdict."""
    print(f"\n{run.name}: {report.status}, {len(course.review)} flags, {report.wall_time_s:.1f} s")
    for flag in course.review:
        print(f"  flag {flag.target} ({flag.gate}): {flag.reason[:160]}")
    print("  phase\tcalls\toutput tokens\tfrom s\tto s")
    for phase in dict.fromkeys(c.phase for c in report.calls):
        calls = [c for c in report.calls if c.phase == phase]
        start = min(c.started_ms for c in calls) / 1000
        end = max(c.started_ms + c.latency_ms for c in calls) / 1000
        tokens = sum(c.output_tokens for c in calls)
        print(f"  {phase}\t{len(calls)}\t{tokens}\t{start:.1f}\t{end:.1f}")
    verdicts = {x.lesson_id: x for x in report.lessons}
    print("  lesson\twords\texercises\toutput tokens per attempt\tverdict (attempts)")
    for lesson in course.lessons():
        tokens = [
            str(c.output_tokens)
            for c in report.calls
            if c.task.split("/")[0] == f"lesson:{lesson.id}" and c.task.startswith("lesson:")
        ]
        v = verdicts.get(lesson.id)
        verdict = f"{v.status} ({v.attempts})" if v else "-"
        print(
            f"  {lesson.id}\t{word_count(lesson.content)}\t{len(lesson.exercises)}\t"
            f"{', '.join(tokens)}\t{verdict}"
        )


async def _judge_all(runs: list[tuple[Path, Course]]) -> dict[str, list[float]]:
    settings = load_config("offline", env={}).settings
    engine = Engine(settings, env={})
    scores: dict[str, list[float]] = {}
    try:
        ledger = Ledger(Decimal("1"))
        effects = CourseCalls(settings, engine.runtime(), ledger)
        ctx = PipelineContext(settings, effects, Decimal("1"))
        for run, course in runs:
            texts = {o.id: o.text for o in course.metadata.learning_outcomes}
            number = {o.id: i + 1 for i, o in enumerate(course.metadata.learning_outcomes)}
            for lesson in course.lessons():
                outcomes = {o: texts[o] for o in lesson.outcome_ids if o in texts}
                verdict = await judge_lesson(
                    ctx,
                    phase="benchmark",
                    lesson_id=re.sub(r"[^A-Za-z0-9._-]", "-", f"{run.name}-{lesson.id}"),
                    lesson=draft_of(lesson, number),
                    outcomes=outcomes,
                    tier="premium",
                )
                if verdict is not None:
                    scores.setdefault(run.name, []).append(composite(verdict))
                    print(
                        f"  {run.name} {lesson.id}: composite {composite(verdict):.2f} "
                        f"(correctness {verdict.correctness})",
                        flush=True,
                    )
    finally:
        await engine.aclose()
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--judge", action="store_true", help="judge every lesson with the 1.5B model")
    parser.add_argument("--lessons", action="store_true", help="per phase and per lesson figures of each run")
    args = parser.parse_args()
    loaded = [(run, *_load(run)) for run in args.runs]
    rows = [_row(run, course, report) for run, course, report in loaded]
    keys = list(rows[0])
    print("\t".join(keys))
    for row in rows:
        print("\t".join(str(row[k]) for k in keys))
    if args.lessons:
        for run, course, report in loaded:
            _details(run, course, report)
    if args.judge:
        scores = asyncio.run(_judge_all([(run, course) for run, course, _ in loaded]))
        print("run\tlessons judged\tcomposite mean\tcomposite min")
        for run, _, _ in loaded:
            got = scores.get(run.name, [])
            mean = f"{statistics.mean(got):.2f}" if got else "-"
            low = f"{min(got):.2f}" if got else "-"
            print(f"{run.name}\t{len(got)}\t{mean}\t{low}")


if __name__ == "__main__":
    main()
