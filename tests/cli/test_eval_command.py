"""`courseforge eval` on the simulator: what it writes, a saved baseline, a deliberately worse
config that exits 1 naming the figure, and mistakes that exit 2 naming the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from courseforge.cli import app

REPO = Path(__file__).resolve().parents[2]
SET = REPO / "evals" / "set"
CONFIGS = REPO / "evals" / "configs"
runner = CliRunner()
ENV = {"OPENROUTER_API_KEY": "", "COURSEFORGE_CONFIG": "", "OPENROUTER_BASE_URL": ""}
SIM = ["--sim", "ideal", "--sim-time-scale", "0", "--reference-judge", "none"]


def invoke(*args: str) -> Any:
    return runner.invoke(app, ["eval", *args], env=ENV, catch_exceptions=False)


def test_baseline_then_a_worse_config_exits_1_naming_the_figure(tmp_path: Path) -> None:
    inputs = [str(SET / "python-basics.json"), str(SET / "spanish-a1.json"), str(SET / "intro-ethics.json")]
    baseline = tmp_path / "baseline.json"
    saved = invoke(
        *inputs,
        "-c",
        str(CONFIGS / "hosted.yaml"),
        *SIM,
        "-o",
        str(tmp_path / "a"),
        "--baseline",
        str(baseline),
        "--save-baseline",
    )
    assert saved.exit_code == 0, saved.output
    data = json.loads(baseline.read_text())
    assert data["schema"] == "courseforge.eval-baseline/1" and set(data["configs"]) == {"hosted"}
    assert set(data["configs"]["hosted"]["figures"]["cost_per_course"]) == {
        "python-basics",
        "spanish-a1",
        "intro-ethics",
    }
    page = (tmp_path / "a" / "index.html").read_text()
    assert "<svg" in page and json.loads((tmp_path / "a" / "eval.json").read_text())["runs"]

    same = invoke(
        *inputs,
        "-c",
        str(CONFIGS / "hosted.yaml"),
        *SIM,
        "-o",
        str(tmp_path / "b"),
        "--baseline",
        str(baseline),
        "--fail-on-regression",
    )
    assert same.exit_code == 0, same.output
    assert "no regression" in same.output

    worse = invoke(
        *inputs,
        "-c",
        f"hosted={CONFIGS / 'worse.yaml'}",
        *SIM,
        "-o",
        str(tmp_path / "c"),
        "--baseline",
        str(baseline),
        "--fail-on-regression",
    )
    assert worse.exit_code == 1, worse.output
    assert "regression:" in worse.output and "cost_per_course" in worse.output
    doc = json.loads((tmp_path / "c" / "eval.json").read_text())
    assert "cost_per_course" in {r["figure"] for r in doc["regressions"]}


@pytest.mark.parametrize(
    ("args", "where"),
    [
        (["--fail-on-regression"], "--baseline"),
        (["--reference-judge", "nobody"], "--reference-judge"),
        (["--tolerance", "speed=1"], "--tolerance"),
        (["-c", "hosted"], "--config"),  # the same name twice
    ],
)
def test_mistakes_exit_2_and_name_the_field(tmp_path: Path, args: list[str], where: str) -> None:
    result = invoke(
        str(SET / "python-basics.json"), "-c", "hosted", *args, "--sim", "ideal", "-o", str(tmp_path / "o")
    )
    assert result.exit_code == 2, result.output
    assert where in result.output
    assert not (tmp_path / "o" / "eval.json").exists()


def test_an_invalid_input_names_its_file_and_path(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"topic": "x", "target_audience": "y", "sections": []}), "utf-8")
    result = invoke(
        str(SET / "python-basics.json"), str(bad), "-c", "hosted", "--sim", "ideal", "-o", str(tmp_path / "o")
    )
    assert result.exit_code == 2
    assert "bad.json" in result.output and "sections" in result.output
    assert not (tmp_path / "o").exists()  # nothing ran, nothing written
