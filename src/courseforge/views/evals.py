"""Eval results (`courseforge eval` output directories, each with an `eval.json`) as a table.

The table reads what is there: one row per directory, a column per scalar figure (nested
objects flattened one level as `outer.inner`); an unreadable file is a row saying why."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .markup import esc

__all__ = ["EvalRun", "evals_html", "load_evals"]

EvalRun = tuple[str, dict[str, Any] | None, str]  # name, figures (None: unreadable), problem


def _flat(data: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            for inner, v in value.items():
                if v is None or isinstance(v, str | int | float | bool):
                    out[f"{key}.{inner}"] = v
        elif value is None or isinstance(value, str | int | float | bool):
            out[key] = value
    return out


def load_evals(root: Path, limit: int = 200) -> list[EvalRun]:
    """Every `eval.json` in `root` or its direct subdirectories, newest first; [] when absent."""
    if not root.is_dir():
        return []
    files = [root / "eval.json", *sorted(root.glob("*/eval.json"))]
    found = [f for f in files if f.is_file()]
    found.sort(key=lambda f: f.stat().st_mtime, reverse=True)
    runs: list[EvalRun] = []
    for f in found[:limit]:
        name = f.parent.name
        try:
            data = json.loads(f.read_text("utf-8"))
        except (OSError, ValueError) as exc:
            runs.append((name, None, f"unreadable: {type(exc).__name__}"))
            continue
        if not isinstance(data, dict):
            runs.append((name, None, "not a JSON object"))
            continue
        runs.append((name, _flat(data), ""))
    return runs


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "—" if value is None else str(value)


def evals_html(runs: Sequence[EvalRun]) -> str:
    if not runs:
        return '<p class="empty">No eval results found.</p>'
    columns: list[str] = []
    for _, data, _ in runs:
        for key in data or {}:
            if key not in columns:
                columns.append(key)
    head = "".join(f'<th scope="col">{esc(c)}</th>' for c in ["run", *columns])
    rows = []
    for name, data, problem in runs:
        if data is None:
            rows.append(
                f'<tr><th scope="row">{esc(name)}</th><td colspan="{len(columns) or 1}">{esc(problem)}</td></tr>'
            )
            continue
        rows.append(
            f'<tr><th scope="row">{esc(name)}</th>'
            + "".join(f"<td>{esc(_cell(data.get(c)))}</td>" for c in columns)
            + "</tr>"
        )
    return f'<div class="scroll"><table class="evals"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'
