"""Baselines and regressions: `--save-baseline` keeps each config's per-input figures;
`--fail-on-regression` compares a new eval with them, config by config (matched by name), and
names every figure that is worse beyond its interval.

A figure regresses when the whole 95 % paired-bootstrap interval of (new - baseline) — or of
new / baseline for cost and time — lies past the tolerance on the worse side: for a
lower-is-better relative figure, `ratio.low > 1 + tolerance`; absolute, `difference.low >
tolerance`; for higher-is-better, `difference.high < -tolerance` (or `ratio.high < 1 -
tolerance`). Tolerances: `--tolerance FIGURE=X`, else the config's `eval.tolerances`, else the
figure's default (`evals.model.FIGURES`; wall-time figures have none: not gated unless asked).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import UserError
from .model import FIGURE_BY_NAME, FIGURES, SCHEMA, RunResult
from .stats import Interval, paired_difference
from .summary import per_input

__all__ = [
    "BASELINE_SCHEMA",
    "Regression",
    "baseline_of",
    "find_regressions",
    "parse_tolerances",
    "read_baseline",
]

BASELINE_SCHEMA = "courseforge.eval-baseline/1"


@dataclass(frozen=True, slots=True)
class Regression:
    config: str
    figure: str
    label: str
    baseline: float
    current: float
    interval: Interval
    kind: str  # "ratio" | "difference"
    tolerance: float

    def line(self) -> str:
        i = self.interval
        return (
            f"{self.config}: {self.label} ({self.figure}) regressed: {self.current:.6g} vs baseline "
            f"{self.baseline:.6g}, {self.kind} {i.value:.4g} [95 % CI {i.low:.4g}, {i.high:.4g}] "
            f"beyond tolerance {self.tolerance:g} over {i.n} inputs"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "config": self.config,
            "figure": self.figure,
            "baseline": self.baseline,
            "current": self.current,
            "kind": self.kind,
            "interval": self.interval.as_dict(),
            "tolerance": self.tolerance,
        }


def baseline_of(runs: Sequence[RunResult], configs: Mapping[str, str]) -> dict[str, Any]:
    """The baseline file's content: per config (name -> digest), each figure per input."""
    return {
        "schema": BASELINE_SCHEMA,
        "configs": {
            name: {
                "digest": digest,
                "figures": {f.name: per_input(runs, name, f.name) for f in FIGURES},
            }
            for name, digest in configs.items()
        },
    }


def read_baseline(data: object, source: str) -> dict[str, dict[str, dict[str, float]]]:
    """Config -> figure -> input -> value, from a baseline file or a whole eval.json."""
    if isinstance(data, dict) and data.get("schema") == SCHEMA:
        runs = [RunResult.model_validate(r) for r in data.get("runs", [])]
        names = list(data.get("configs", {}))
        return {n: {f.name: per_input(runs, n, f.name) for f in FIGURES} for n in names}
    if not isinstance(data, dict) or data.get("schema") != BASELINE_SCHEMA:
        raise UserError(
            "not a baseline",
            [("--baseline", f"{source}: expected schema {BASELINE_SCHEMA!r} or {SCHEMA!r}")],
        )
    out: dict[str, dict[str, dict[str, float]]] = {}
    for name, entry in data.get("configs", {}).items():
        figures = entry.get("figures") if isinstance(entry, dict) else None
        if not isinstance(figures, dict):
            raise UserError(
                "bad baseline", [(f"--baseline: configs.{name}.figures", "missing or not a mapping")]
            )
        out[name] = {
            f: {str(k): float(v) for k, v in per.items() if v is not None}
            for f, per in figures.items()
            if isinstance(per, dict)
        }
    return out


def parse_tolerances(items: Sequence[str]) -> dict[str, float]:
    """`FIGURE=NUMBER` flags; an unknown figure or a bad number is a UserError naming it."""
    out: dict[str, float] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep or name not in FIGURE_BY_NAME:
            raise UserError(
                "bad --tolerance",
                [
                    (
                        "--tolerance",
                        f"{item!r}: expected FIGURE=NUMBER, FIGURE one of {', '.join(FIGURE_BY_NAME)}",
                    )
                ],
            )
        try:
            value = float(raw)
        except ValueError:
            value = -1.0
        if value < 0:
            raise UserError(
                "bad --tolerance", [("--tolerance", f"{item!r}: the tolerance must be a number >= 0")]
            )
        out[name] = value
    return out


def find_regressions(
    runs: Sequence[RunResult],
    baseline: Mapping[str, Mapping[str, Mapping[str, float]]],
    tolerances: Mapping[str, Mapping[str, float]],
    *,
    seed: int = 0,
) -> list[Regression]:
    """Every (config, figure) worse than the baseline beyond its interval. `tolerances`: config
    -> figure -> tolerance (already merged: flags over the config's over the defaults)."""
    found: list[Regression] = []
    for config in dict.fromkeys(r.config for r in runs):
        if config not in baseline:
            continue
        for f in FIGURES:
            old = baseline[config].get(f.name, {})
            new = per_input(runs, config, f.name)
            tol = tolerances.get(config, {}).get(f.name, f.default_tolerance)
            if tol is None:
                continue
            relative = f.tolerance_kind == "relative"
            interval = paired_difference(old, new, ratio=relative, seed=seed)
            if interval is None:
                continue
            if relative:
                worse = interval.low > 1 + tol if f.better == "lower" else interval.high < 1 - tol
            else:
                worse = interval.low > tol if f.better == "lower" else interval.high < -tol
            if worse:
                common = sorted(set(old) & set(new))
                found.append(
                    Regression(
                        config=config,
                        figure=f.name,
                        label=f.label,
                        baseline=sum(old[k] for k in common) / len(common),
                        current=sum(new[k] for k in common) / len(common),
                        interval=interval,
                        kind="ratio" if relative else "difference",
                        tolerance=tol,
                    )
                )
    return found
