"""The eval's index.html: self-contained (no script, nothing fetched), every section and plot
drawn from the document; and, in headless Chromium, rendered without a single request
leaving the page."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from courseforge.evals import RunResult, build_eval, render_html
from courseforge.evals.model import LessonScore


def sample_doc() -> dict[str, Any]:
    runs = []
    for config, cost, sim in (("cheap", 0.01, 0.6), ("premium <b>", 0.05, 0.7)):
        for i in range(4):
            runs.append(
                RunResult(
                    input=f"course-{i}",
                    config=config,
                    repeat=1,
                    job_id=f"{config}-{i}",
                    status="approved",
                    lessons=10,
                    cost_per_course=cost * (1 + i / 5),
                    wall_s=2.0 + i,
                    critical_path_s=1.0,
                    wall_over_critical=2.0 + i,
                    first_attempt_pass_rate=0.8,
                    similarity_mean=sim + i / 100,
                    judge_composite=3.5 + i / 4,
                    cost_by_phase={"metadata": cost / 2, "lessons": cost / 2},
                    calls_by_model={"m-" + config: 12},
                    lessons_by_tier={"mid": 10},
                    gate_failures={"length": i},
                    lesson_scores=[
                        LessonScore(lesson_id=f"S1-L{k}", similarity=sim, composite=3.0 + k / 5)
                        for k in range(10)
                    ],
                )
            )
    configs = [{"name": c, "source": f"{c}.yaml", "digest": "d"} for c in ("cheap", "premium <b>")]
    return build_eval(runs, configs, meta={"repeat": 1, "created_at": "2026-01-01T00:00:00Z"})


def test_page_is_self_contained_and_escaped() -> None:
    page = render_html(sample_doc())
    assert "<script" not in page and "<link" not in page and "@import" not in page
    urls = set(re.findall(r"https?://[^\s\"')]+", page))
    assert urls <= {"http://www.w3.org/2000/svg"}  # the SVG namespace, never fetched
    assert page.count("<svg") == 4  # cost vs quality, cost by phase, two score distributions
    assert "premium &lt;b&gt;" in page and "premium <b>" not in page
    for heading in (
        "Per config",
        "Differences",
        "Plots",
        "Seed targets vs actual",
        "Model and tier mix",
        "Per input",
    ):
        assert heading in page
    # every lesson on mid: tier 1 share 1.0 misses seed 000's 70-80 %; first attempts 0.8 meet >= 0.70
    assert "first-attempt pass rate</td><td>&gt;= 0.70</td><td>0.8 met" in page
    assert "tier 1 share</td><td>0.70-0.80</td><td>1 <span class=bad>missed</span>" in page
    assert "course-3" in page and "length 6" in page  # per input rows; gate failures summed (0+1+2+3)


@pytest.mark.browser
def test_page_renders_in_headless_chromium_without_a_request(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("Debian chromium is not installed (make deps-system)")
    page_file = tmp_path / "index.html"
    page_file.write_text(render_html(sample_doc()), "utf-8")
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"], headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("request", lambda r: requests.append(r.url))
            page.goto(page_file.as_uri())
            page.wait_for_load_state("networkidle")
            assert page.title().startswith("courseforge eval")
            plots = page.locator("svg")
            assert plots.count() == 4
            for i in range(4):
                box = plots.nth(i).bounding_box()
                assert box is not None and box["width"] > 300 and box["height"] > 60
            # The config means are drawn: one labelled dot per config in the cost/quality plot.
            assert page.locator("svg text.name", has_text="cheap").count() >= 1
            assert page.locator("table").count() == 5  # the four, and the seeds' targets against actuals
            page.screenshot(path=str(tmp_path / "eval.png"), full_page=True)
        finally:
            browser.close()
    assert (tmp_path / "eval.png").stat().st_size > 10_000
    assert requests == [page_file.as_uri()]  # the page itself, nothing else


def test_seed_targets_reach_the_dashboard_summary() -> None:
    doc = sample_doc()
    # The dashboard's Evals page shows `summary`'s scalars as columns: target and actual.
    assert doc["summary"]["cheap.target: first-attempt pass rate >= 0.70"] == 0.8
    assert doc["summary"]["cheap.target: tier 2 share 0.15-0.25"] == 0.0
    assert [t["met"] for t in doc["configs"]["cheap"]["seed_targets"]][:2] == [False, False]
