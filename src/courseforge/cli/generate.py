"""`courseforge generate`: one course as a durable job (or on Temporal), with progress on
stderr — a live bar on a terminal, one line per finished lesson when piped — and a summary."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from ..config import Settings, load_config
from ..domain import AnalysisResult, Course, Exercise, Report
from ..errors import UserError
from ..pipeline import ProgressEvent
from ..telemetry import configure_tracing
from ._common import (
    EXIT_FAILED,
    ConfigOpt,
    ReportOpt,
    app,
    check_outputs,
    err,
    fail_user,
    read_input,
    write_atomic,
)

if TYPE_CHECKING:
    from ..telemetry.metrics import CallMetrics

__all__ = ["generate", "summary_line", "summary_table"]


class _Progress:
    """Rich progress bars on a terminal; when stderr is piped (a log, CI), plain lines: each
    phase starting and ending, and one line per finished lesson with its verdict, tier,
    attempts and time, each stamped with the time since the run started. `--verbose` adds the
    lines on a terminal too."""

    def __init__(self, terminal: bool, verbose: bool = False) -> None:
        self.terminal = terminal
        self.lines = verbose or not terminal
        self._progress: Any = None
        self._task: Any = None
        self._t0 = time.monotonic()

    def __enter__(self) -> _Progress:
        if self.terminal:
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

    def line(self, event: ProgressEvent) -> str:
        """The plain line for an event, e.g. `[  41.2 s] lessons 3/10: S1-L2 accepted (cheap, 1
        attempt, 38.0 s)`."""
        stamp = f"[{time.monotonic() - self._t0:7.1f} s]"
        if event.kind == "task_done":
            return f"{stamp} {event.phase} {event.done}/{event.total}: {event.message}"
        what = {"start": "started", "done": "done", "info": ""}.get(event.kind, event.kind)
        return " ".join(p for p in (stamp, event.phase, what) if p) + (
            f": {event.message}" if event.message else ""
        )

    def __call__(self, event: ProgressEvent) -> None:
        if self.lines:
            text = self.line(event)
            if self._progress is not None:
                self._progress.console.print(text, markup=False, highlight=False)
            else:
                err.print(text, markup=False, highlight=False, soft_wrap=True)
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
            elif not self.lines:
                self._progress.console.print(f"{event.phase}: {event.message}")
            self._task = None
        elif event.kind == "info" and not self.lines:
            self._progress.console.print(f"{event.phase}: {event.message}")


def _metrics_for(path: Path | None) -> CallMetrics | None:
    """The run's metrics when a file is wanted (its path is checked with the other outputs)."""
    if path is None:
        return None
    from ..telemetry.metrics import CallMetrics

    return CallMetrics()


def _write(what: str, path: Path, text: str, failures: list[str]) -> bool:
    """Write one output; a failure (the disk filled, the folder went away) is collected, not
    raised, so the next output is still written."""
    try:
        write_atomic(path, text)
    except OSError as exc:
        failures.append(f"{what} {path}: {exc.strerror or exc}")
        return False
    return True


def _kept_in_store(file: Path, output: Path, report: Report, job: str | None) -> str:
    """Where a course that could not be written is, and the command that writes it for free."""
    job_id = str(report.summary.get("job_id") or job or report.course_id)
    return (
        f"the course is paid for and kept in the store as job {job_id}: once {output} can be written "
        f"(or with another -o), `courseforge generate {file} -o {output} --job {job_id}` writes it "
        "without a new call"
    )


def _read_bank(path: Path | None) -> list[Exercise]:
    """The bank's questions (read before any call: a bad bank is exit 2, nothing paid)."""
    if path is None:
        return []
    from ..exports.bank_import import read_bank

    bank = read_bank(path)
    err.print(f"question bank: {len(bank.questions)} questions ({bank.format}), {len(bank.skipped)} skipped")
    for qid, why in bank.skipped:
        err.print(f"  skipped {qid}: {why}")
    return bank.questions


def summary_table(report: Report) -> Table:
    table = Table(title=f"{report.course_id}: {report.status}", show_lines=False)
    table.add_column("part")
    table.add_column("calls", justify="right")
    table.add_column("tokens in/out", justify="right")
    table.add_column("cost USD", justify="right")
    for label, totals, cap in [
        *(("phase " + k, v, report.phase_budget_usd.get(k)) for k, v in report.by_phase.items()),
        *(("model " + k, v, None) for k, v in report.by_model.items()),
    ]:
        table.add_row(
            label,
            str(totals.calls),
            f"{totals.input_tokens}/{totals.output_tokens}",
            # A phase with its own ceiling (`budget.phase_shares`) shows its spend against it.
            f"{totals.cost_usd:.6f}" + ("" if cap is None else f" of {cap:.6f}"),
        )
    table.add_row(
        "total",
        str(sum(t.calls for t in report.by_phase.values())),
        "",
        f"{report.total_cost_usd:.6f} of {report.budget_usd}",
    )
    return table


def summary_line(report: Report) -> str:
    """The run in one line, printed whole (never wrapped into the table's width and cut)."""
    s = report.summary
    mean = s.get("similarity_mean")
    similarity = f"{mean:.3f}" if isinstance(mean, int | float) else "n/a"
    return (
        f"lessons {s.get('lessons')}  escalations {report.escalations}  retries {report.retries}  "
        f"review flags {report.review_flags}  similarity mean {similarity}  "
        f"wall {report.wall_time_s:.1f}s"
    )


@app.command()
def generate(
    file: Annotated[Path, typer.Argument(help="analysis_result JSON file")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the course JSON")],
    report_path: ReportOpt = None,
    config: ConfigOpt = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Progress lines on a terminal too (always when piped).")
    ] = False,
    job: Annotated[
        str | None,
        typer.Option(
            "--job",
            help="Job id in the store (default: the input's course_id). Running again with the same "
            "id resumes an unfinished job, replaying finished calls instead of paying for them again.",
        ),
    ] = None,
    html: Annotated[
        Path | None,
        typer.Option(
            "--html", help="Also write the report's views (charts) to this self-contained HTML file."
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
    metrics_file: Annotated[
        Path | None,
        typer.Option(
            "--metrics-file",
            help="Write this run's Prometheus metrics here (atomically, for a node-exporter textfile "
            "collector: name it *.prom). Default: $COURSEFORGE_METRICS_FILE, else none.",
            envvar="COURSEFORGE_METRICS_FILE",
        ),
    ] = None,
    no_cache: Annotated[
        bool,
        typer.Option(
            "--no-cache",
            help="Send every call to the provider: neither read nor fill the response cache "
            "(the config's `cache: {mode: off}` for this run).",
        ),
    ] = False,
    batch: Annotated[
        bool,
        typer.Option(
            "--batch",
            help="Send calls through the providers' batch APIs (typically half price, answers "
            "within the batch window instead of seconds); a request a batch fails takes the normal path.",
        ),
    ] = False,
    question_bank: Annotated[
        Path | None,
        typer.Option(
            "--question-bank",
            help="A vetted question bank (GIFT, Moodle XML, or QTI 2.1 zip or item): questions matching a "
            "lesson are reused with their source ids and its model is asked for fewer (docs/authoring.md).",
        ),
    ] = None,
    review_plan: Annotated[
        bool,
        typer.Option(
            "--review-plan",
            help="Stop after phase 2 (metadata) with status plan_review: look at the plan with "
            "`courseforge plan show JOB`, edit it, approve it, then run this command again with "
            "--job JOB to finish the course (docs/authoring.md). With --temporal the workflow waits "
            "for the approval (`plan ... --temporal`).",
        ),
    ] = False,
    sync_prices: Annotated[
        bool,
        typer.Option(
            "--sync-prices",
            help="Before the first model call, fetch each OpenAI-compatible provider's /models list "
            "into its prices file (as `courseforge models sync`) and price this run from it. "
            "Without it nothing is fetched: the last synced file, else the config's table.",
        ),
    ] = False,
) -> None:
    """Generate a course. Exit 0 written, 2 invalid input/config/output path or prices that
    `--sync-prices` could not fetch (nothing paid), 3 generation failed or an output could not
    be written (the course stays in the store)."""
    report_path = report_path or output.with_name(output.stem + ".report.json")
    try:
        loaded = load_config(config)
        analysis = read_input(file, loaded.settings.max_input_bytes)
        bank = _read_bank(question_bank)
        # Checked before the first model call: a course is never paid for and then not written.
        inputs = [file] + ([Path(config)] if config and Path(config).is_file() else [])
        outputs = [("--output", output), ("--report", report_path), ("--html", html)]
        check_outputs([*outputs, ("--metrics-file", metrics_file)], inputs=inputs)
    except UserError as exc:
        raise fail_user(exc) from exc
    err.print(f"config: {loaded.reason}")
    settings = _settings_for_run(loaded.settings, sync_prices=sync_prices, no_cache=no_cache)
    metrics = _metrics_for(metrics_file)
    run = _Run(
        settings, analysis, job=job, temporal=temporal, batch=batch, review_plan=review_plan, bank=bank
    )
    # Traces only when the standard OTEL_* variables ask for them (docs/operations.md).
    stop_tracing = configure_tracing(say=err.print)
    try:
        course, report = asyncio.run(run(verbose, metrics))
    except UserError as exc:
        raise fail_user(exc) from exc
    finally:
        stop_tracing()
    _finish(course, report, file, output, report_path, html, metrics, metrics_file, job, temporal)


def _settings_for_run(settings: Settings, *, sync_prices: bool, no_cache: bool) -> Settings:
    """The run's settings: priced from freshly fetched `/models` lists only when
    `--sync-prices` asks (never otherwise), the response cache off with `--no-cache`."""
    from ..engine import without_cache

    if sync_prices:
        from .models import sync_for_run

        try:
            settings = asyncio.run(sync_for_run(settings, err.print))
        except UserError as exc:
            raise fail_user(exc) from exc
    return without_cache(settings) if no_cache else settings


@dataclass(frozen=True, slots=True)
class _Run:
    """One `generate` run: in-process (durable, through the store) or on a Temporal fleet."""

    settings: Settings
    analysis: AnalysisResult
    job: str | None
    temporal: str | None
    batch: bool
    review_plan: bool
    #: The vetted questions of `--question-bank` (none: every exercise generated).
    bank: list[Exercise] = field(default_factory=list)

    async def __call__(self, verbose: bool, metrics: CallMetrics | None) -> tuple[Course | None, Report]:
        from ..jobs import generate_durably

        with _Progress(err.is_terminal, verbose) as progress:
            if self.temporal:
                from ..distributed import generate_on_temporal

                return await generate_on_temporal(
                    self.settings,
                    self.analysis,
                    address=self.temporal,
                    job_id=self.job,
                    progress=progress,
                    say=err.print,
                    review_plan=self.review_plan,
                    bank=self.bank,
                    batch=self.batch,
                )
            engine = None
            if metrics is not None:
                from ..engine import Engine

                engine = Engine(self.settings)
                engine.add_hook(metrics)
            try:
                return await generate_durably(
                    self.settings,
                    self.analysis,
                    job_id=self.job,
                    progress=progress,
                    say=err.print,
                    engine=engine,
                    batch=self.batch,
                    review_plan=self.review_plan,
                    bank=self.bank,
                )
            finally:
                if engine is not None:
                    await engine.aclose()


def _finish(
    course: Course | None,
    report: Report,
    file: Path,
    output: Path,
    report_path: Path,
    html: Path | None,
    metrics: CallMetrics | None,
    metrics_file: Path | None,
    job: str | None,
    temporal: str | None = None,
) -> None:
    """The outputs written and the outcome said (and the exit status set).

    The course first: it is what was paid for. Every output was proven writable before the
    first call; when one fails anyway, the others are still written and the job stays in the
    store, so nothing paid for is lost."""
    from ..engine import dumps

    failures: list[str] = []
    written = course is not None and _write("--output", output, dumps(course), failures)
    _write("--report", report_path, dumps(report), failures)
    if metrics is not None and metrics_file is not None:
        metrics.observe_course(report)
        try:
            metrics.write_textfile(metrics_file)
            err.print(f"metrics: {metrics_file}")
        except OSError as exc:
            failures.append(f"--metrics-file {metrics_file}: {exc.strerror or exc}")
    err.print(summary_table(report))
    err.print(summary_line(report), soft_wrap=True)
    if html is not None:
        from ..views import report_document

        _write("--html", html, report_document(report), failures)
        views = f"html report: {html}"
    else:
        views = f"html report: courseforge report {report_path} --html {report_path.with_suffix('.html')}"
    for failure in failures:
        err.print(f"[red]error:[/red] not written: {failure}")
    if course is None and report.status == "plan_review":
        job_id = report.summary.get("job_id", job)
        where = f" --temporal {temporal}" if temporal else ""
        err.print(
            f"plan ready for review: courseforge plan show {job_id}{where}; then plan edit/approve, and "
            f"generate again with --job {job_id}{where}\nreport: {report_path}"
        )
        if failures:
            raise typer.Exit(EXIT_FAILED)
        return
    if course is None:
        err.print(f"[red]generation failed:[/red] {report.failure_reason}")
        err.print(f"report: {report_path}\n{views}")
        raise typer.Exit(EXIT_FAILED)
    if not written:
        err.print(_kept_in_store(file, output, report, job))
        raise typer.Exit(EXIT_FAILED)
    err.print(f"course: {output} ({course.status})\nreport: {report_path}\n{views}")
    if failures:
        raise typer.Exit(EXIT_FAILED)
