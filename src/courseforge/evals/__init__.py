"""Comparing configs before switching: `courseforge eval` runs a batch of analyses under
several configs (each run a durable job), scores every config's lessons with one reference
judge, and writes `eval.json` and a self-contained `index.html`; baselines and regressions;
shadow runs of a share of the service's jobs under another config (docs/evals.md)."""

from .compare import (
    BASELINE_SCHEMA,
    Regression,
    baseline_of,
    find_regressions,
    parse_tolerances,
    read_baseline,
)
from .configs import EvalConfig, deep_merge, load_eval_config
from .html import render_html
from .model import FIGURES, SCHEMA, Figure, LessonScore, RunResult, run_result
from .runs import EvalInput, ReferenceJudge, RunSpec, job_id_for, plan, run_matrix
from .stats import Interval, bootstrap_mean, paired_difference, percentile
from .summary import build_eval, config_summary, differences, per_input

__all__ = [
    "BASELINE_SCHEMA",
    "FIGURES",
    "SCHEMA",
    "EvalConfig",
    "EvalInput",
    "Figure",
    "Interval",
    "LessonScore",
    "ReferenceJudge",
    "Regression",
    "RunResult",
    "RunSpec",
    "baseline_of",
    "bootstrap_mean",
    "build_eval",
    "config_summary",
    "deep_merge",
    "differences",
    "find_regressions",
    "job_id_for",
    "load_eval_config",
    "paired_difference",
    "parse_tolerances",
    "per_input",
    "percentile",
    "plan",
    "read_baseline",
    "render_html",
    "run_matrix",
    "run_result",
]
