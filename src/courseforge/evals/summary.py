"""From runs to the eval document (`eval.json`, docs/evals.md): per config, per input, and the
differences between configs with paired-bootstrap 95 % intervals."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from .model import FIGURES, SCHEMA, RunResult
from .stats import bootstrap_mean, paired_difference, percentile
from .targets import seed_targets

__all__ = ["build_eval", "config_summary", "differences", "headline", "per_input"]


def per_input(runs: Sequence[RunResult], config: str, figure: str) -> dict[str, float]:
    """Input -> the figure's mean over that input's repeats under `config` (runs without the
    figure left out)."""
    values: dict[str, list[float]] = defaultdict(list)
    for run in runs:
        value = run.figure(figure) if run.config == config else None
        if value is not None:
            values[run.input].append(value)
    return {k: sum(v) / len(v) for k, v in values.items()}


def _sum_maps(maps: Sequence[Mapping[str, float]]) -> dict[str, float]:
    total: Counter[str] = Counter()
    for m in maps:
        total.update(m)
    return {k: round(float(v), 6) for k, v in sorted(total.items())}


def _mean_map(maps: Sequence[Mapping[str, float]]) -> dict[str, float]:
    return {k: round(v / len(maps), 6) for k, v in _sum_maps(maps).items()} if maps else {}


def config_summary(runs: Sequence[RunResult], *, seed: int = 0) -> dict[str, Any]:
    """One config's runs in figures: each figure's mean, p50, p95 and the 95 % interval of
    its mean; status counts; gate failures; cost by phase; model and tier mix."""
    figures: dict[str, Any] = {}
    for f in FIGURES:
        values = [v for r in runs if (v := r.figure(f.name)) is not None]
        ci = bootstrap_mean(values, seed=seed)
        figures[f.name] = {
            "mean": None if ci is None else round(ci.value, 6),
            "p50": None if not values else round(percentile(values, 50) or 0.0, 6),
            "p95": None if not values else round(percentile(values, 95) or 0.0, 6),
            "low": None if ci is None else round(ci.low, 6),
            "high": None if ci is None else round(ci.high, 6),
            "n": len(values),
        }
    retries = [r.retry_rate for r in runs if r.retry_rate is not None]
    out: dict[str, Any] = {
        "runs": len(runs),
        "status": dict(sorted(Counter(r.status for r in runs).items())),
        "figures": figures,
        "critical_path_s_mean": round(sum(r.critical_path_s for r in runs) / len(runs), 3) if runs else None,
        "lessons_mean": round(sum(r.lessons for r in runs) / len(runs), 3) if runs else None,
        "gate_failures": {k: int(v) for k, v in _sum_maps([r.gate_failures for r in runs]).items()},
        "cost_by_phase_mean": _mean_map([r.cost_by_phase for r in runs]),
        "cost_by_model_mean": _mean_map([r.cost_by_model for r in runs]),
        "calls_by_model": {k: int(v) for k, v in _sum_maps([r.calls_by_model for r in runs]).items()},
        "calls_by_tier": {k: int(v) for k, v in _sum_maps([r.calls_by_tier for r in runs]).items()},
        "lessons_by_tier": {k: int(v) for k, v in _sum_maps([r.lessons_by_tier for r in runs]).items()},
        "judge_cost_usd": round(sum(r.judge_cost_usd for r in runs), 6),
        "judge_model": next((r.judge_model for r in runs if r.judge_model), ""),
        "retry_rate_mean": round(sum(retries) / len(retries), 6) if retries else None,
    }
    out["seed_targets"] = seed_targets(out)
    return out


def differences(runs: Sequence[RunResult], configs: Sequence[str], *, seed: int = 0) -> list[dict[str, Any]]:
    """Every config against the first, figure by figure: the difference of means (and, for
    cost and time, their ratio) with a paired-bootstrap 95 % interval over common inputs."""
    if not configs:
        return []
    base, out = configs[0], []
    for other in configs[1:]:
        for f in FIGURES:
            a, b = per_input(runs, base, f.name), per_input(runs, other, f.name)
            diff = paired_difference(a, b, seed=seed)
            ratio = paired_difference(a, b, ratio=True, seed=seed) if f.tolerance_kind == "relative" else None
            out.append(
                {
                    "config": other,
                    "against": base,
                    "figure": f.name,
                    "label": f.label,
                    "better": f.better,
                    "difference": None if diff is None else diff.as_dict(),
                    "ratio": None if ratio is None else ratio.as_dict(),
                }
            )
    return out


def headline(
    summaries: Mapping[str, Mapping[str, Any]], found: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """Flat scalars for a table of evals (the dashboard's Evals page flattens one level):
    `CONFIG.runs`, `CONFIG.FIGURE` (the mean), `CONFIG.target: NAME GOAL` (the seeds' targets'
    actuals) and `B/A.cost_ratio` with its interval."""
    out: dict[str, Any] = {}
    for name, c in summaries.items():
        out[f"{name}.runs"] = c["runs"]
        for figure, value in c["figures"].items():
            out[f"{name}.{figure}"] = value["mean"]
        # The seeds' targets beside the actuals (the dashboard's Evals page shows these columns).
        for t in c.get("seed_targets", []):
            out[f"{name}.target: {t['target']} {t['goal']}"] = t["actual"]
    for d in found:
        if d["figure"] == "cost_per_course" and d["ratio"] is not None:
            key = f"{d['config']}/{d['against']}.cost_ratio"
            out[key], out[key + "_low"], out[key + "_high"] = (
                d["ratio"][k] for k in ("value", "low", "high")
            )
    return out


def build_eval(
    runs: Sequence[RunResult],
    configs: Sequence[Mapping[str, Any]],
    *,
    meta: Mapping[str, Any],
    seed: int = 0,
) -> dict[str, Any]:
    """The eval document. `configs`: `{name, source, digest}` of each config, in CLI order (the
    first is the one the others are compared with)."""
    names = [str(c["name"]) for c in configs]
    inputs: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys(r.input for r in runs):
        row: dict[str, Any] = {}
        for config in names:
            mine = [r for r in runs if r.input == name and r.config == config]
            if not mine:
                continue
            row[config] = {
                "runs": len(mine),
                "status": [r.status for r in mine],
                "lessons": [r.lessons for r in mine],
                **{f.name: per_input(mine, config, f.name).get(name) for f in FIGURES},
            }
        inputs[name] = row
    summaries = {
        str(c["name"]): {**dict(c), **config_summary([r for r in runs if r.config == c["name"]], seed=seed)}
        for c in configs
    }
    found = differences(runs, names, seed=seed)
    return {
        "schema": SCHEMA,
        **dict(meta),
        "summary": headline(summaries, found),
        "configs": summaries,
        "figures": [
            {"name": f.name, "label": f.label, "better": f.better, "tolerance_kind": f.tolerance_kind}
            for f in FIGURES
        ],
        "inputs": inputs,
        "differences": found,
        "runs": [r.model_dump(mode="json") for r in runs],
    }
