"""courseforge: generate whole courses through a quality-gated cascade of LLMs.

Sync only at this edge.

Exit codes: 0 done (the course's status says approved or needs_review); 2 invalid input or
config (no model called, nothing written); 3 generation failed (the report is written, the
course is not).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from .config import load_config, masked
from .domain import AnalysisResult, Course, Report
from .errors import CourseforgeError, UserError
from .pipeline import ProgressEvent, parse_analysis

__all__ = ["app", "main", "write_atomic"]

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__.splitlines()[0])
config_app = typer.Typer(no_args_is_help=True, help="Inspect the effective config.")
app.add_typer(config_app, name="config")
sim_app = typer.Typer(no_args_is_help=True, help="The provider simulator (never a default provider).")
app.add_typer(sim_app, name="sim")
err = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 200)

EXIT_INVALID = 2
EXIT_FAILED = 3

ConfigOpt = Annotated[
    str | None,
    typer.Option(
        "--config", "-c", help="Config YAML path or bundled profile (hosted, offline, offline-cascade)."
    ),
]
ReportOpt = Annotated[Path | None, typer.Option("--report", help="Where to write the report JSON")]


def write_atomic(path: Path, text: str) -> None:
    """Write via a temp file in the same directory and rename: never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _fail_user(exc: UserError) -> typer.Exit:
    err.print(f"[red]error:[/red] {exc.headline if exc.problems else exc}")
    for path, reason in exc.problems:
        err.print(f"  {path}: {reason}")
    return typer.Exit(EXIT_INVALID)


def _read_input(file: Path, max_bytes: int) -> AnalysisResult:
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise UserError("cannot read input", [(str(file), exc.strerror or str(exc))]) from exc
    return parse_analysis(raw, max_bytes=max_bytes)


@app.command()
def validate(
    file: Annotated[Path, typer.Argument(help="analysis_result JSON file")], config: ConfigOpt = None
) -> None:
    """Check an analysis_result; list every problem (JSON path and reason) on stderr."""
    try:
        settings = load_config(config).settings
        analysis = _read_input(file, settings.max_input_bytes)
    except UserError as exc:
        raise _fail_user(exc) from exc
    lessons = sum(s.lesson_count for s in analysis.sections)
    err.print(
        f"valid: {len(analysis.sections)} sections, {lessons} lessons requested, "
        f"min_lessons {analysis.min_lessons}"
    )


class _Progress:
    """Rich progress on a terminal; silence when stderr is piped."""

    def __init__(self, enabled: bool, lines: bool = False) -> None:
        self.enabled = enabled
        #: Plain one-line-per-event progress (``--verbose`` when stderr is not a terminal).
        self.lines = lines and not enabled
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=err,
                transient=False,
            )
            self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def __call__(self, event: ProgressEvent) -> None:
        if self.lines:
            detail = f" {event.done}/{event.total}" if event.kind == "task_done" else ""
            err.print(f"{event.phase} {event.kind}{detail} {event.message}".rstrip())
        if self._progress is None:
            return
        if event.kind == "start":
            self._task = self._progress.add_task(event.phase, total=event.total or None)
        elif event.kind == "task_done" and self._task is not None:
            self._progress.update(
                self._task,
                completed=event.done,
                total=event.total,
                description=f"{event.phase} {event.message}",
            )
        elif event.kind == "done":
            if self._task is not None:
                self._progress.update(self._task, description=f"{event.phase} done", completed=1, total=1)
            else:
                self._progress.console.print(f"{event.phase}: {event.message}")
            self._task = None
        elif event.kind == "info":
            self._progress.console.print(f"{event.phase}: {event.message}")


def summary_table(report: Report) -> Table:
    table = Table(title=f"{report.course_id}: {report.status}", show_lines=False)
    table.add_column("part")
    table.add_column("calls", justify="right")
    table.add_column("tokens in/out", justify="right")
    table.add_column("cost USD", justify="right")
    for label, totals in [
        *(("phase " + k, v) for k, v in report.by_phase.items()),
        *(("model " + k, v) for k, v in report.by_model.items()),
    ]:
        table.add_row(
            label,
            str(totals.calls),
            f"{totals.input_tokens}/{totals.output_tokens}",
            f"{totals.cost_usd:.6f}",
        )
    table.add_row(
        "total",
        str(sum(t.calls for t in report.by_phase.values())),
        "",
        f"{report.total_cost_usd:.6f} of {report.budget_usd}",
    )
    s = report.summary
    table.caption = (
        f"lessons {s.get('lessons')}  escalations {report.escalations}  retries {report.retries}  "
        f"review flags {report.review_flags}  similarity mean {s.get('similarity_mean')}  "
        f"wall {report.wall_time_s:.1f}s"
    )
    return table


@app.command()
def generate(
    file: Annotated[Path, typer.Argument(help="analysis_result JSON file")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the course JSON")],
    report_path: ReportOpt = None,
    config: ConfigOpt = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Progress lines even when piped.")] = False,
    job: Annotated[
        str | None,
        typer.Option(
            "--job",
            help="Job id in the store (default: the input's course_id). Running again with the same "
            "id resumes an unfinished job, replaying finished calls instead of paying for them again.",
        ),
    ] = None,
    temporal: Annotated[
        str | None,
        typer.Option(
            "--temporal",
            help="Run on the worker fleet of this Temporal frontend (HOST:PORT) instead of in-process; "
            "the job id names the workflow.",
        ),
    ] = None,
) -> None:
    """Generate a course. Exit 0 written, 2 invalid input/config, 3 generation failed."""
    from .durable import generate_durably
    from .engine import dumps

    try:
        loaded = load_config(config)
        analysis = _read_input(file, loaded.settings.max_input_bytes)
    except UserError as exc:
        raise _fail_user(exc) from exc
    err.print(f"config: {loaded.reason}")
    report_path = report_path or output.with_name(output.stem + ".report.json")

    async def run() -> tuple[Course | None, Report]:
        with _Progress(err.is_terminal, verbose) as progress:
            if temporal:
                from .distributed import generate_on_temporal

                return await generate_on_temporal(
                    loaded.settings, analysis, address=temporal, job_id=job, progress=progress, say=err.print
                )
            return await generate_durably(
                loaded.settings, analysis, job_id=job, progress=progress, say=err.print
            )

    try:
        course, report = asyncio.run(run())
    except UserError as exc:
        raise _fail_user(exc) from exc
    write_atomic(report_path, dumps(report))
    err.print(summary_table(report))
    if course is None:
        err.print(f"[red]generation failed:[/red] {report.failure_reason}")
        err.print(f"report: {report_path}")
        raise typer.Exit(EXIT_FAILED)
    write_atomic(output, dumps(course))
    err.print(f"course: {output} ({course.status})\nreport: {report_path}")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
    config: ConfigOpt = None,
    log_level: Annotated[str, typer.Option(help="debug | info | warning | error")] = "info",
) -> None:
    """Run the HTTP service: jobs API, SSE progress, review queue, /metrics (needs $COURSEFORGE_API_TOKENS)."""
    from .service.serve import serve_forever

    try:
        loaded = load_config(config)
        err.print(f"config: {loaded.reason}")
        serve_forever(loaded.settings, host=host, port=port, log_level=log_level)
    except UserError as exc:
        raise _fail_user(exc) from exc


@app.command()
def schema(which: Annotated[str, typer.Argument(help="analysis | course | report")]) -> None:
    """Print a JSON Schema of the contract."""
    models: dict[str, Any] = {"analysis": AnalysisResult, "course": Course, "report": Report}
    if which not in models:
        err.print(f"[red]error:[/red] unknown schema {which!r}; choose analysis, course or report")
        raise typer.Exit(EXIT_INVALID)
    mode = "validation" if which == "analysis" else "serialization"
    typer.echo(json.dumps(models[which].model_json_schema(mode=mode), indent=2))


@config_app.command("show")
def config_show(config: ConfigOpt = None) -> None:
    """Print the effective config (YAML) with secrets masked."""
    import yaml

    try:
        loaded = load_config(config)
    except UserError as exc:
        raise _fail_user(exc) from exc
    err.print(f"# {loaded.reason} ({loaded.source})")
    typer.echo(yaml.safe_dump(masked(loaded.settings), sort_keys=False, allow_unicode=True))


@sim_app.command("serve")
def sim_serve(
    port: Annotated[int, typer.Option("--port", "-p", help="Port on 127.0.0.1 (0: any free port).")] = 8089,
    profile: Annotated[
        str, typer.Option("--profile", help="ideal, realistic, chaos, or a profile YAML file.")
    ] = "realistic",
    seed: Annotated[int, typer.Option("--seed", help="Fault and latency draws follow this seed.")] = 0,
    time_scale: Annotated[
        float, typer.Option("--time-scale", help="Multiply simulated latency (0.01: 100x faster).")
    ] = 1.0,
) -> None:
    """Serve an OpenAI-compatible simulator with latency profiles and injected faults."""
    from .sim.serve import serve

    try:
        asyncio.run(serve(profile, port=port, seed=seed, time_scale=time_scale, say=err.print))
    except UserError as exc:
        raise _fail_user(exc) from exc
    except KeyboardInterrupt:
        err.print("simulator stopped")


# The quality commands (check, calibrate) live in their own module and register on `app`.
from . import cli_quality  # noqa: E402

__all__ += ["cli_quality"]

# `worker` (the distributed engine) registers on `app` too; Temporal is imported only when it runs.
from . import cli_distributed  # noqa: E402

__all__ += ["cli_distributed"]


def main() -> None:
    try:
        app()
    except CourseforgeError as exc:  # a run-time failure that escaped: still exit 3, never a traceback
        err.print(f"[red]error:[/red] {exc}")
        sys.exit(EXIT_FAILED)


if __name__ == "__main__":
    main()
