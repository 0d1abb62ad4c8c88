"""`courseforge check` and `courseforge calibrate`: the quality gates from the command line.

check: exit 0 when every gate passes, 1 when anything is flagged (flags on stdout and in the
report), 2 on invalid files. calibrate: thresholds and precision/recall from labelled JSONL.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from ..config import load_config
from ..domain import Course
from ..domain.tasks import outcome_id
from ..errors import UserError
from ..files import MAX_COURSE_BYTES, read_text_limited
from ._common import (
    EXIT_FLAGGED,
    EXIT_INVALID,
    ConfigOpt,
    ReportOpt,
    app,
    check_outputs,
    err,
    fail_user,
    read_input,
    read_limited,
    write_atomic,
)

__all__ = ["calibrate", "check"]


@app.command()
def check(
    course_file: Annotated[Path, typer.Argument(help="course JSON (generated or edited)")],
    input_file: Annotated[Path, typer.Option("--input", "-i", help="the analysis_result it was made from")],
    report_path: ReportOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Run the phase 4 and 5 gates on a course. Exit 0 all pass, 1 flagged, 2 invalid files."""
    from ..engine import dumps
    from ..pipeline.check import check_course, policy_text
    from ..providers.embeddings import make_embedder

    try:
        settings = load_config(config).settings
        analysis = read_input(input_file, settings.max_input_bytes)
        if report_path:
            check_outputs([("--report", report_path)], inputs=[input_file, course_file])
        raw_course = read_limited(course_file, MAX_COURSE_BYTES, what="course")
        try:
            course = Course.model_validate_json(raw_course)
        except ValidationError as exc:
            problems = [("$." + ".".join(str(p) for p in e["loc"]), e["msg"]) for e in exc.errors()[:20]]
            raise UserError("invalid course", problems) from exc
    except UserError as exc:
        raise fail_user(exc) from exc
    embedder = make_embedder(
        settings.gates.embedding_model,
        batch_size=settings.gates.embedding_batch_size,
        threads=settings.gates.embedding_threads,
        dtype=settings.gates.embedding_dtype,
    )
    try:
        report, flags = asyncio.run(check_course(course, analysis, settings, embedder))
    except UserError as exc:
        raise fail_user(exc) from exc
    if report_path:
        write_atomic(report_path, dumps(report))
    for flag in flags:
        typer.echo(f"{flag.target}\t{flag.gate}\t{flag.reason}")
    # Say whose policy the verdicts follow (`--config` chooses): word bounds differ by profile.
    err.print(policy_text(settings), highlight=False, markup=False)
    q = report.quality
    err.print(
        f"{len(report.lessons)} lessons checked with {settings.gates.embedding_model}: "
        f"{len(flags)} flag(s); similarity mean {q.similarity_mean if q else None}"
    )
    if flags:
        raise typer.Exit(EXIT_FLAGGED)


def _label(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value > 0
    text = str(value).strip().lower()
    if text in ("pass", "good", "on_topic", "on-topic", "true", "yes", "1", "positive"):
        return True
    if text in ("fail", "bad", "off_topic", "off-topic", "related", "false", "no", "0", "negative"):
        return False
    raise ValueError(f"unknown label {value!r}")


async def _scores(rows: list[dict[str, Any]], model: str) -> list[float]:
    """Each row's score: given, or the similarity of its content to its outcome(s)."""
    from ..providers.embeddings import make_embedder
    from ..quality.gates import lesson_similarity

    embedder = make_embedder(model)
    out = []
    for row in rows:
        if "score" in row:
            out.append(float(row["score"]))
            continue
        outcomes = row.get("outcomes") or [row["outcome"]]
        values = await lesson_similarity(
            row["content"], {outcome_id(i + 1): o for i, o in enumerate(outcomes)}, embedder
        )
        out.append(float(values["similarity"]))
    return out


@app.command()
def calibrate(
    labelled: Annotated[Path, typer.Argument(help="JSONL: {score|content+outcome(s), label} per line")],
    gate: Annotated[
        str, typer.Option("--gate", help="Only rows of this gate (rows without 'gate' count)")
    ] = "similarity",
    target_precision: Annotated[float, typer.Option("--precision", help="Pass precision to reach")] = 0.9,
    max_false_alarms: Annotated[
        float | None,
        typer.Option(
            "--max-false-alarms",
            help="Instead of --precision: the highest pass threshold failing at most this share of good items",
        ),
    ] = None,
    balanced: Annotated[
        bool,
        typer.Option(
            "--balanced",
            help="Instead: the pass threshold that best separates good from bad (Youden's J)",
        ),
    ] = False,
    config: ConfigOpt = None,
) -> None:
    """Derive pass / borderline / fail thresholds from labelled examples; print precision/recall."""
    from ..quality.calibrate import derive_thresholds

    try:
        settings = load_config(config).settings
        rows = []
        for line in read_text_limited(labelled, MAX_COURSE_BYTES, what="labelled examples").splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            if row.get("gate", gate) != gate:
                continue
            if "score" not in row and "content" not in row:
                continue
            row["_good"] = _label(row["label"])
            rows.append(row)
    except UserError as exc:
        raise fail_user(exc) from exc
    except (ValueError, KeyError) as exc:
        raise fail_user(
            UserError("invalid labelled file", [(str(labelled), f"line {len(rows) + 1}: {exc}")])
        ) from exc
    model = settings.gates.embedding_model
    scores = asyncio.run(_scores(rows, model))
    try:
        cal = derive_thresholds(
            [(s, r["_good"]) for s, r in zip(scores, rows, strict=True)],
            target_precision=target_precision,
            max_false_alarms=max_false_alarms,
            balanced=balanced,
        )
    except ValueError as exc:
        raise fail_user(UserError("cannot calibrate", [(str(labelled), str(exc))])) from exc
    m, sv = cal.at_pass, cal.at_severe
    typer.echo(f"gate {gate}, embedding model {model}: {cal.positives} good, {cal.negatives} bad examples")
    typer.echo(
        f"pass_at      {cal.pass_at:.4f}  pass precision {m.precision:.3f} recall {m.recall:.3f} F1 {m.f1:.3f}"
    )
    typer.echo(f"             fail precision {m.fail_precision:.3f} recall {m.fail_recall:.3f}")
    typer.echo(
        f"severe_below {cal.severe_below:.4f}  below it: bad {sv.fail_precision:.3f} of the time, catches {sv.fail_recall:.3f} of bad"
    )
    typer.echo(f"borderline   [{cal.severe_below:.4f}, {cal.pass_at:.4f}) -> the judge decides")
    typer.echo(
        f"config:\n  gates:\n    similarity:\n      {model}: {{pass_at: {cal.pass_at:.2f}, severe_below: {cal.severe_below:.2f}}}"
    )
    if balanced:
        typer.echo(
            f"good items failed at pass_at: {1 - m.recall:.3f}; bad items passing: {1 - m.fail_recall:.3f}"
        )
    elif max_false_alarms is not None:
        typer.echo(f"good items failed at pass_at: {1 - m.recall:.3f} (allowed {max_false_alarms})")
    elif not m.precision >= target_precision:
        err.print(f"[yellow]warning:[/yellow] no threshold reaches pass precision {target_precision}")
    _ = EXIT_INVALID
