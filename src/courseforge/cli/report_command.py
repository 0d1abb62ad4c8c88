"""`courseforge report REPORT.json`: a generation report's summary, and with `--html OUT.html`
its views (cost by phase and model, the call timeline, gate scores) in one self-contained
file — the same rendering as the dashboard's report page."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from ..domain import Report
from ..errors import UserError
from ..files import MAX_COURSE_BYTES, read_limited
from ._common import app, err, fail_user, write_atomic

__all__ = ["load_report", "report"]


def load_report(path: Path) -> Report:
    """A report JSON file, validated; a UserError names the file (or the field) and the reason."""
    raw = read_limited(path, MAX_COURSE_BYTES, what="report")
    try:
        return Report.model_validate_json(raw)
    except ValidationError as exc:
        problems = [
            ("$." + ".".join(str(p) for p in e["loc"]) if e["loc"] else str(path), e["msg"])
            for e in exc.errors()[:20]
        ]
        raise UserError("not a courseforge report", problems) from exc


@app.command()
def report(
    file: Annotated[Path, typer.Argument(help="A report JSON (`generate --report`, GET /v1/jobs/ID/report)")],
    html: Annotated[
        Path | None, typer.Option("--html", help="Write the report's views to this self-contained HTML file")
    ] = None,
) -> None:
    """Print a report's summary; with --html, render its charts into one HTML file."""
    from .generate import summary_line, summary_table

    try:
        loaded = load_report(file)
    except UserError as exc:
        raise fail_user(exc) from exc
    err.print(summary_table(loaded))
    err.print(summary_line(loaded), soft_wrap=True)
    if html is not None:
        from ..views import report_document

        write_atomic(html, report_document(loaded))
        err.print(f"html report: {html}")
