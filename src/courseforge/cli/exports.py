"""`courseforge export` (a course into an LMS format) and `courseforge export-training`
(accepted lessons as chat fine-tuning data)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer

from ..config import load_config
from ..errors import UserError
from ..exports import FORMATS, ExportResult, check_format, export_course, load_course
from ..exports.training import (
    CourseRecord,
    TrainingResult,
    export_training,
    records_from_dir,
    records_from_store,
    shown_excerpts,
)
from ..files import MAX_COURSE_BYTES, read_text_limited
from ..storage import open_store
from ._common import ConfigOpt, app, check_outputs, err, fail_user

__all__ = ["export", "export_training_cmd"]


def _print_export(result: ExportResult) -> None:
    err.print(
        f"{result.format}: {result.lessons} lessons, {result.exercises} exercises -> {result.path} "
        f"({len(result.files)} files)"
    )
    for issue in result.issues:
        colour = "red" if issue.action == "skipped" else "yellow"
        err.print(
            f"  [{colour}]{issue.action}[/{colour}] {issue.path} ({issue.exercise_type}): {issue.reason}"
        )
    if result.skipped:
        err.print(f"[red]{len(result.skipped)} exercise(s) not in the output[/red] (see above)")


@app.command()
def export(
    course_file: Annotated[Path, typer.Argument(help="course JSON (what `generate` writes)")],
    fmt: Annotated[str, typer.Option("--format", "-f", help=f"one of: {', '.join(FORMATS)}")],
    out: Annotated[Path, typer.Option("-o", "--out", help="output folder (markdown, html) or file")],
    config: ConfigOpt = None,
    result_json: Annotated[
        Path | None, typer.Option("--result", help="also write the result (counts, issues) as JSON here")
    ] = None,
) -> None:
    """Export a course (--format: one of the formats docs/exports.md lists). What a format
    cannot hold is listed on stderr (and in --result), never dropped silently."""
    try:
        name = check_format(fmt)
        settings = load_config(config).settings
        inputs = [course_file] + ([Path(config)] if config and Path(config).is_file() else [])
        check_outputs(
            [("-o", out), ("--result", result_json)],
            inputs=inputs,
            folders={"-o"} if name.output == "folder" else (),
        )
        raw = read_text_limited(course_file, MAX_COURSE_BYTES, what="course")
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise UserError(
                "course is not JSON", [(str(course_file), f"line {exc.lineno}: {exc.msg}")]
            ) from exc
        course = load_course(data)
        library = settings.exports.cmi5_library
        result = export_course(
            course,
            name,
            out,
            mastery_score=settings.exports.mastery_score,
            cmi5_library=Path(library) if library else None,
        )
    except UserError as exc:
        raise fail_user(exc) from exc
    _print_export(result)
    if result_json is not None:
        from ..exports import write_text_atomic

        write_text_atomic(result_json, json.dumps(result.to_dict(), indent=2) + "\n")
    typer.echo(json.dumps({k: v for k, v in result.to_dict().items() if k not in ("files", "type_map")}))


@app.command("export-training")
def export_training_cmd(
    source: Annotated[
        str,
        typer.Option(
            "--from", help="a store URL (sqlite:///…, postgresql://…) or a folder of NAME.course.json"
        ),
    ],
    out: Annotated[
        Path, typer.Option("-o", "--out", help="train JSONL; the validation split goes beside it")
    ],
    fmt: Annotated[str, typer.Option("--format", help="openai-chat")] = "openai-chat",
    messages_only: Annotated[
        bool,
        typer.Option("--messages-only", help="lines hold only `messages`; metadata to NAME.metadata.jsonl"),
    ] = False,
    config: ConfigOpt = None,
) -> None:
    """Accepted lessons as chat fine-tuning examples (train and validation split by course)."""
    try:
        if fmt != "openai-chat":
            raise UserError("unknown training format", [("--format", f"{fmt!r}: only openai-chat")])
        settings = load_config(config).settings
        folder = Path(source)
        if folder.is_dir():
            records = records_from_dir(folder)
        elif "://" in source:
            records = asyncio.run(_from_store(source))
        else:
            raise UserError("no such source", [("--from", f"{source!r} is neither a folder nor a store URL")])
        excerpts = None
        if any(r.analysis.source_material for r in records):
            # Sourced lessons were shown retrieved passages: retrieve them again, as generation did.
            from ..providers.embeddings import make_embedder

            embedder = make_embedder(settings.gates.embedding_model)
            excerpts = asyncio.run(shown_excerpts(records, settings, embedder.embed))
        result = export_training(records, settings, out, messages_only=messages_only, excerpts=excerpts)
    except UserError as exc:
        raise fail_user(exc) from exc
    _print_training(result)
    typer.echo(json.dumps({k: v for k, v in result.to_dict().items() if k != "dropped"}))


async def _from_store(url: str) -> list[CourseRecord]:
    store = open_store(url)
    await store.init()
    try:
        return await records_from_store(store)
    finally:
        await store.close()


def _print_training(result: TrainingResult) -> None:
    err.print(
        f"{result.courses} courses, {result.lessons_seen} lessons: {result.train} train + "
        f"{result.validation} validation examples ({result.train_bytes} + {result.validation_bytes} bytes); "
        f"not accepted {result.not_accepted}, duplicates {result.duplicates}, PII {result.pii_dropped}"
    )
    for dropped in result.dropped:
        err.print(f"  dropped {dropped['lesson']}: {dropped['reason']}")
    kept = result.train + result.validation
    if kept:
        err.print(
            f"{result.verified} of {kept} examples' rebuilt requests match the digest of a request that was "
            "sent (none can for a folder source; too few from a store means another --config than the "
            "courses were generated with)"
        )
