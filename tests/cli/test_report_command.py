"""`courseforge report REPORT.json --html OUT.html`, and `generate --html`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from courseforge.cli import app
from engine_helpers import author_reply, loopback_config, loopback_in_thread, write_config

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    tmp = tmp_path_factory.mktemp("gen")
    with loopback_in_thread(author_reply()) as server:
        config = write_config(tmp / "c.yaml", loopback_config(server.base_url))
        r = CliRunner().invoke(
            app,
            [
                "generate", str(EXAMPLES / "python-basics.json"), "-o", str(tmp / "course.json"),
                "-c", str(config), "--job", "html-1", "--html", str(tmp / "gen.html"),
            ],
        )  # fmt: skip
    assert r.exit_code == 0, r.output
    return tmp / "course.report.json", tmp / "gen.html", r.output


def test_generate_writes_the_html_and_says_where(generated: tuple[Path, Path, str]) -> None:
    report, html, output = generated
    assert f"html report: {html}" in output
    assert html.read_text("utf-8").count('class="call ') == len(json.loads(report.read_text())["calls"])


def test_report_html_from_a_report_file(generated: tuple[Path, Path, str], tmp_path: Path) -> None:
    report, from_generate, _ = generated
    out = tmp_path / "sub" / "r.html"
    r = CliRunner().invoke(app, ["report", str(report), "--html", str(out)])
    assert r.exit_code == 0, r.output
    assert f"html report: {out}" in r.output
    assert out.read_text("utf-8") == from_generate.read_text("utf-8")  # one renderer


def test_bad_report_names_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"course_id": "x", "status": "bogus"}))
    out = tmp_path / "r.html"
    r = CliRunner().invoke(app, ["report", str(bad), "--html", str(out)])
    assert r.exit_code == 2
    assert "$.status" in r.output and "$.budget_usd" in r.output
    assert not out.exists()  # nothing half-written
    missing = CliRunner().invoke(app, ["report", str(tmp_path / "none.json")])
    assert missing.exit_code == 2 and "cannot read report" in missing.output


def test_the_summary_line_is_printed_whole(generated: tuple[Path, Path, str]) -> None:
    report, _, output = generated
    mean = json.loads(report.read_text())["summary"]["similarity_mean"]
    line = next(x for x in output.splitlines() if "similarity mean" in x)
    assert f"similarity mean {mean:.3f}  wall " in line  # one line, the number after its name
    assert line.startswith("lessons ") and line.rstrip().endswith("s")


def test_the_summary_table_shows_each_capped_phase_against_its_cap() -> None:
    from decimal import Decimal

    from rich.console import Console

    from courseforge.cli.generate import summary_table
    from courseforge.domain.report import Report, Totals

    report = Report(
        course_id="c",
        status="approved",
        budget_usd=Decimal("0.45"),
        phase_budget_usd={"quality": Decimal("0.0225")},
        by_phase={
            "metadata": Totals(calls=1, cost_usd=Decimal("0.004")),
            "quality": Totals(calls=2, cost_usd=Decimal("0.01")),
        },
    )
    console = Console(width=200, record=True)
    console.print(summary_table(report))
    rows = {
        line.split("│")[1].strip(): line for line in console.export_text().splitlines() if line.count("│") > 2
    }
    assert "0.010000 of 0.022500" in rows["phase quality"]
    assert " of " not in rows["phase metadata"]  # no cap: spend only
