"""What every command shares: the Typer apps, the stderr console, exit codes, common options,
atomic writes and how a user's mistake is printed."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ..domain import AnalysisResult
from ..errors import UserError
from ..exports import write_text_atomic as write_atomic
from ..pipeline import parse_analysis

__all__ = [
    "EXIT_FAILED",
    "EXIT_FLAGGED",
    "EXIT_INVALID",
    "ConfigOpt",
    "ReportOpt",
    "app",
    "config_app",
    "err",
    "fail_user",
    "read_input",
    "sim_app",
    "write_atomic",
]

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="courseforge: generate whole courses through a quality-gated cascade of LLMs.",
)
config_app = typer.Typer(no_args_is_help=True, help="Inspect the effective config.")
app.add_typer(config_app, name="config")
sim_app = typer.Typer(no_args_is_help=True, help="The provider simulator (never a default provider).")
app.add_typer(sim_app, name="sim")
err = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 200)

EXIT_FLAGGED = 1
EXIT_INVALID = 2
EXIT_FAILED = 3

ConfigOpt = Annotated[
    str | None,
    typer.Option(
        "--config", "-c", help="Config YAML path or bundled profile (hosted, offline, offline-cascade)."
    ),
]
ReportOpt = Annotated[Path | None, typer.Option("--report", help="Where to write the report JSON")]


def fail_user(exc: UserError) -> typer.Exit:
    """Print a user's mistake (each problem on its own line: path and reason); exit 2."""
    err.print(f"[red]error:[/red] {exc.headline if exc.problems else exc}")
    for path, reason in exc.problems:
        err.print(f"  {path}: {reason}")
    return typer.Exit(EXIT_INVALID)


def read_input(file: Path, max_bytes: int) -> AnalysisResult:
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise UserError("cannot read input", [(str(file), exc.strerror or str(exc))]) from exc
    return parse_analysis(raw, max_bytes=max_bytes)
