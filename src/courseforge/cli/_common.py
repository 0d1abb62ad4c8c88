"""What every command shares: the Typer apps, the stderr console, exit codes, common options,
atomic writes and how a user's mistake is printed."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ..domain import AnalysisResult
from ..errors import UserError
from ..files import read_limited
from ..files import write_text_atomic as write_atomic
from ..pipeline import parse_analysis

__all__ = [
    "EXIT_FAILED",
    "EXIT_FLAGGED",
    "EXIT_INVALID",
    "ConfigOpt",
    "ReportOpt",
    "app",
    "check_outputs",
    "config_app",
    "err",
    "fail_user",
    "read_input",
    "read_limited",
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
    return parse_analysis(read_limited(file, max_bytes), max_bytes=max_bytes)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _probe(path: Path) -> str | None:
    """Create and remove a file where `write_atomic` will create its own (beside `path`, named
    like it: `.NAME.XXXXXXXX.tmp`, longer than NAME), creating missing folders and removing
    them again: None when that works, else why not. Proof, not a guess from permissions: as
    root `os.access` says yes to /proc and /sys, and only a real create meets the file-name
    length limit."""
    parent, missing = path.parent, []
    while not os.path.lexists(parent) and parent != parent.parent:
        missing.append(parent)
        parent = parent.parent
    created: list[Path] = []
    try:
        for folder in reversed(missing):
            folder.mkdir()
            created.append(folder)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        return f"cannot create a file in {path.parent}: {exc.strerror or exc}"
    finally:
        for folder in reversed(created):
            with contextlib.suppress(OSError):
                folder.rmdir()
    return None


def _output_problem(path: Path, inputs: Sequence[Path], *, folder: bool) -> str | None:
    """Why `write_atomic` (or, for a `folder`, `atomic_dir`) could not write `path` (None: it
    can; see `check_outputs`)."""
    resolved = path.expanduser().resolve()
    for i in inputs:
        if _same_file(path, i) or resolved == i.expanduser().resolve():
            return "is the input file: writing it would destroy the input"
        if folder and resolved in i.expanduser().resolve().parents:
            return f"holds the input {i}: replacing the folder would delete it"
    if folder:
        if path.exists() and not path.is_dir():
            return "exists and is not a folder"
    elif path.is_dir():
        return "is a directory"
    elif path.exists() and not path.is_file():
        return "exists and is not a regular file"
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return f"{ancestor} is not a directory"
    return _probe(path)


def check_outputs(
    outputs: Sequence[tuple[str, Path | None]],
    *,
    inputs: Sequence[Path] = (),
    folders: Collection[str] = (),
) -> None:
    """Before any work is paid for: every output path (option name, path; None = not asked
    for) can be written by `write_atomic` — not a directory, not a non-regular file, and a
    file created and removed beside it proves its folder takes a new file of that name (see
    `_probe`) — and names neither an input nor another output. The options in `folders` name
    a folder `atomic_dir` replaces: an existing folder is fine unless it holds an input.
    Raises UserError listing every problem, each under its option. Any command's output
    option goes through here."""
    problems: list[tuple[str, str]] = []
    seen: dict[Path, str] = {}
    for option, path in outputs:
        if path is None:
            continue
        where = f"{option} {path}"
        try:
            resolved = path.expanduser().resolve()
            if resolved in seen:
                problems.append((where, f"the same file as {seen[resolved]}"))
                continue
            seen[resolved] = option
            reason = _output_problem(path, inputs, folder=option in folders)
        except OSError as exc:  # a name the file system refuses (too long, invalid) or a loop
            reason = f"cannot be used as a file name: {exc.strerror or exc}"
        if reason is not None:
            problems.append((where, reason))
    if problems:
        raise UserError("cannot write the output", problems)
