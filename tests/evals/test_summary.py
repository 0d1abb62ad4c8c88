"""The eval document's flat `summary`, as the dashboard's Evals page reads it
(`views.load_evals` flattens one level of each `eval.json`)."""

from __future__ import annotations

import json
from pathlib import Path

from courseforge.evals import RunResult, build_eval
from courseforge.views import evals_html, load_evals


def test_the_dashboard_table_shows_each_configs_figures_and_the_cost_ratio(tmp_path: Path) -> None:
    runs = [
        RunResult(
            input=f"in{i}",
            config=c,
            repeat=1,
            job_id=f"{c}{i}",
            status="approved",
            cost_per_course=cost * (i + 1),
        )
        for c, cost in (("a", 0.01), ("b", 0.03))
        for i in range(3)
    ]
    doc = build_eval(runs, [{"name": "a"}, {"name": "b"}], meta={"repeat": 1})
    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "eval.json").write_text(json.dumps(doc), "utf-8")
    ((name, figures, problem),) = load_evals(tmp_path)
    assert name == "one" and problem == "" and figures is not None
    assert figures["summary.a.runs"] == 3
    assert abs(figures["summary.b/a.cost_ratio"] - 3.0) < 1e-9
    assert abs(figures["summary.a.cost_per_course"] - 0.02) < 1e-9
    assert "summary.b.cost_per_course" in evals_html(load_evals(tmp_path))
