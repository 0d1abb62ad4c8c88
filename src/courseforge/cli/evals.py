"""`courseforge eval`: every input under every config (durable jobs, resumable), one reference
judge, `DIR/eval.json` and `DIR/index.html`; baselines and `--fail-on-regression`."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from ..errors import UserError
from ..files import MAX_COURSE_BYTES, read_text_limited
from ._common import EXIT_FLAGGED, app, err, fail_user, read_input, write_atomic

if TYPE_CHECKING:
    from ..evals import EvalConfig, EvalInput

__all__ = ["eval_command", "expand_inputs", "summary_table"]

_NAMED = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)=(.+)$")


def expand_inputs(paths: list[Path]) -> list[Path]:
    """Files as given; a directory stands for its `*.json` files, sorted."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            found = sorted(p.glob("*.json"))
            if not found:
                raise UserError("no inputs", [(str(p), "directory holds no *.json analysis")])
            out += found
        else:
            out.append(p)
    return out


def summary_table(doc: dict[str, Any]) -> Table:
    from ..evals import FIGURES

    table = Table(title="eval: mean [95 % CI] per config")
    table.add_column("figure")
    for name in doc["configs"]:
        table.add_column(name, justify="right")
    for f in FIGURES:
        cells = []
        for c in doc["configs"].values():
            v = c["figures"][f.name]
            cells.append("-" if v["mean"] is None else f"{v['mean']:.4g} [{v['low']:.4g}, {v['high']:.4g}]")
        table.add_row(f.label, *cells)
    for d in doc["differences"]:
        iv = d["ratio"] if d["ratio"] else d["difference"]
        if iv is not None and d["figure"] == "cost_per_course":
            table.caption = (
                f"cost {d['config']} / {d['against']}: {iv['value']:.3f} [95 % CI {iv['low']:.3f}, "
                f"{iv['high']:.3f}] over {iv['n']} inputs"
            )
            break
    return table


def targets_table(doc: dict[str, Any]) -> Table:
    """The seeds' success metrics against each config's actual figures (`evals.targets`)."""
    table = Table(title="success targets vs actual (docs/seed-rules.md)")
    table.add_column("target")
    table.add_column("goal", justify="right")
    configs = list(doc["configs"].values())
    for name in doc["configs"]:
        table.add_column(name, justify="right")
    rows = [c.get("seed_targets", []) for c in configs]
    for i, first in enumerate(rows[0] if rows else []):
        cells = []
        for per_config in rows:
            row = per_config[i]
            mark = {True: "met", False: "missed", None: ""}[row["met"]]
            cells.append("-" if row["actual"] is None else f"{row['actual']:.4g} {mark}")
        table.add_row(first["target"], first["goal"], *cells)
    return table


@app.command("eval")
def eval_command(
    inputs: Annotated[
        list[Path], typer.Argument(help="analysis_result JSON files (a directory: its *.json)")
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Directory for eval.json, index.html, store.db")
    ],
    config: Annotated[
        list[str],
        typer.Option(
            "--config",
            "-c",
            help="Config YAML or bundled profile, repeatable; NAME=PATH names it (the first is the "
            "one the others are compared with).",
        ),
    ],
    repeat: Annotated[int, typer.Option("--repeat", min=1, max=50, help="Runs per (input, config)")] = 1,
    reference_judge: Annotated[
        str | None,
        typer.Option(
            "--reference-judge",
            help="Model id (of any config) that judges every config's lessons; default the first "
            "config's premium model; 'none' to skip.",
        ),
    ] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, max=256, help="Courses at once")] = 4,
    store: Annotated[
        str | None,
        typer.Option("--store", help="Store URL for the eval's jobs (default sqlite DIR/store.db)"),
    ] = None,
    sim: Annotated[
        str | None,
        typer.Option(
            "--sim",
            help="Run against an in-process simulator with this profile (ideal, realistic, chaos, reasoning or a "
            "YAML path) instead of the configured providers.",
        ),
    ] = None,
    sim_seed: Annotated[int, typer.Option("--sim-seed")] = 0,
    sim_time_scale: Annotated[float, typer.Option("--sim-time-scale", min=0.0)] = 0.01,
    baseline: Annotated[
        Path | None,
        typer.Option("--baseline", help="Baseline file (or an earlier eval.json) to compare with"),
    ] = None,
    fail_on_regression: Annotated[
        bool, typer.Option("--fail-on-regression", help="Exit 1 when a figure is worse than the baseline")
    ] = False,
    save_baseline: Annotated[
        bool, typer.Option("--save-baseline", help="Write this eval's figures to the --baseline file")
    ] = False,
    tolerance: Annotated[
        list[str] | None, typer.Option("--tolerance", help="FIGURE=X allowed worsening (repeatable)")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Bootstrap seed")] = 0,
) -> None:
    """Compare configs over a batch of analyses. Exit 0 written, 1 a regression against the
    baseline (each named on stderr), 2 invalid input/config/flags."""
    from ..evals import baseline_of, find_regressions, parse_tolerances
    from ..evals.session import EvalPlan, SimOptions, run_eval, write_outputs

    try:
        if (fail_on_regression or save_baseline) and baseline is None:
            raise UserError(
                "missing --baseline", [("--baseline", "--fail-on-regression and --save-baseline need a FILE")]
            )
        if fail_on_regression and save_baseline:
            raise UserError(
                "conflicting flags", [("--save-baseline", "cannot be combined with --fail-on-regression")]
            )
        flags = parse_tolerances(tolerance or [])
        configs = _eval_configs(config)
        loaded = _eval_inputs(expand_inputs(inputs), configs[0].settings.max_input_bytes)
        old = _baseline(baseline) if baseline is not None and not save_baseline else None
    except UserError as exc:
        raise fail_user(exc) from exc

    plan = EvalPlan(
        inputs=loaded,
        configs=configs,
        out_dir=output,
        repeat=repeat,
        reference_judge="" if (reference_judge or "").lower() == "none" else reference_judge,
        store_url=store,
        concurrency=concurrency,
        sim=SimOptions(sim, sim_seed, sim_time_scale) if sim else None,
        seed=seed,
    )
    try:
        doc, runs = asyncio.run(
            run_eval(plan, say=lambda line: err.print(line, markup=False, highlight=False))
        )
    except UserError as exc:
        raise fail_user(exc) from exc
    regressions = []
    if old is not None:
        tolerances = {c.name: {**c.tolerances, **flags} for c in configs}
        regressions = find_regressions(runs, old, tolerances, seed=seed)
        doc["baseline"] = str(baseline)
        doc["regressions"] = [r.as_dict() for r in regressions]
    data, page = write_outputs(output, doc)
    err.print(summary_table(doc))
    err.print(targets_table(doc))
    err.print(f"eval: {data}\nreport: {page}")
    if save_baseline and baseline is not None:
        write_atomic(
            baseline, json.dumps(baseline_of(runs, {c.name: c.digest for c in configs}), indent=1) + "\n"
        )
        err.print(f"baseline: {baseline}")
    for r in regressions:
        err.print(f"[red]regression:[/red] {r.line()}")
    if regressions and fail_on_regression:
        raise typer.Exit(EXIT_FLAGGED)
    if old is not None and not regressions:
        err.print("no regression against the baseline beyond the intervals")


def _eval_configs(refs: list[str]) -> list[EvalConfig]:
    """Each --config (NAME=PATH names it); two of one name are refused."""
    from ..evals import load_eval_config

    configs: list[EvalConfig] = []
    for ref in refs:
        m = _NAMED.match(ref)
        cfg = load_eval_config(m.group(2), name=m.group(1)) if m else load_eval_config(ref)
        if any(c.name == cfg.name for c in configs):
            raise UserError(
                "duplicate config name", [("--config", f"{cfg.name!r} twice; name one NAME=PATH")]
            )
        configs.append(cfg)
    return configs


def _eval_inputs(files: list[Path], max_bytes: int) -> list[EvalInput]:
    """Each input file validated, named by its stem (two of one name are refused)."""
    from ..evals import EvalInput

    loaded: list[EvalInput] = []
    for file in files:
        try:
            analysis = read_input(file, max_bytes)
        except UserError as exc:
            raise UserError(f"invalid input {file}", [(f"{file}: {p}", r) for p, r in exc.problems]) from exc
        if any(i.name == file.stem for i in loaded):
            raise UserError(
                "duplicate input name", [(str(file), f"another input is also named {file.stem!r}")]
            )
        loaded.append(EvalInput(file.stem, analysis))
    return loaded


def _baseline(path: Path) -> dict[str, Any]:
    from ..evals import read_baseline

    try:
        text = read_text_limited(path, MAX_COURSE_BYTES, what="baseline")
        return read_baseline(json.loads(text), str(path))
    except json.JSONDecodeError as exc:
        raise UserError("unreadable baseline", [("--baseline", f"{path}: {exc}")]) from exc
