"""`courseforge validate`, `schema` and `config show`: looking at inputs, the contract and the
effective config, without generating anything."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from ..config import load_config, masked
from ..config.prices import price_sources
from ..domain import AnalysisResult, Course, Report
from ..errors import UserError
from ._common import EXIT_INVALID, ConfigOpt, app, config_app, err, fail_user, read_input

__all__ = ["config_show", "schema", "validate"]


@app.command()
def validate(
    file: Annotated[Path, typer.Argument(help="analysis_result JSON file")], config: ConfigOpt = None
) -> None:
    """Check an analysis_result; list every problem (JSON path and reason) on stderr."""
    try:
        settings = load_config(config).settings
        analysis = read_input(file, settings.max_input_bytes)
    except UserError as exc:
        raise fail_user(exc) from exc
    lessons = sum(s.lesson_count for s in analysis.sections)
    err.print(
        f"valid: {len(analysis.sections)} sections, {lessons} lessons requested, "
        f"min_lessons {analysis.min_lessons}"
    )


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
        raise fail_user(exc) from exc
    err.print(f"# {loaded.reason} ({loaded.source})")
    typer.echo(yaml.safe_dump(masked(loaded.settings), sort_keys=False, allow_unicode=True))
    typer.echo("# prices: where each model's come from, and how old they are")
    for model_id, where in price_sources(loaded.settings).items():
        typer.echo(f"#   {model_id}: {where}")
