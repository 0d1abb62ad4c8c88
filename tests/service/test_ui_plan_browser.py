"""The plan page in headless Chromium: a job submitted with review_plan stops at its plan; the
author's bad outcome is refused with the reason beside the form (what was typed kept), a good
edit and approval finish the course from the edited plan. Screenshots as in test_ui_browser."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from service_helpers import TOKEN
from test_ui_browser import _sign_in, artefacts, browser_page, dashboard  # noqa: F401 (fixture)

from engine_helpers import example_data

pytestmark = pytest.mark.browser


def _api(base: str, path: str, body: Any = None) -> Any:
    request = urllib.request.Request(
        base + path,
        data=None if body is None else json.dumps(body).encode(),
        method="GET" if body is None else "POST",
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_an_author_edits_and_approves_the_plan_in_the_dashboard(tmp_path: Path, artefacts: Path) -> None:  # noqa: F811
    with dashboard(tmp_path) as base, browser_page(artefacts) as page:

        def shot(name: str) -> None:
            page.screenshot(path=str(artefacts / name), full_page=True)
            print(f"  {name}: {page.url}")

        job = _api(base, "/v1/jobs?review_plan=true", {**example_data(), "course_id": "plan-walk"})
        _sign_in(page, base)
        page.goto(f"{base}/ui/jobs/{job['id']}")
        page.locator("[data-status]", has_text="plan_review").wait_for(timeout=120_000)
        page.reload()
        page.get_by_role("link", name="Plan", exact=True).click()
        page.get_by_role("button", name="Save plan").wait_for()
        shot("p1-plan.png")

        first = page.get_by_label("outcome LO1 text")
        good = first.input_value() + " by running short scripts"
        first.fill("Eat a sandwich while watching television")
        page.get_by_role("button", name="Save plan").click()
        alert = page.get_by_role("alert")
        alert.wait_for()
        assert "no measurable verb" in alert.inner_text()
        assert (
            page.get_by_label("outcome LO1 text").input_value() == "Eat a sandwich while watching television"
        )
        shot("p2-plan-refused.png")

        page.get_by_label("outcome LO1 text").fill(good)
        page.get_by_label("S1-L1 title").fill("Your first script, line by line")
        page.get_by_label("S1-L1 order").fill("4")  # after S1-L2 (2) and the new lesson (3)
        page.get_by_label("new lesson title in S1").fill("Reading what the user types")
        page.get_by_label("new lesson outcomes in S1").fill("LO1")
        page.get_by_role("button", name="Save plan").click()
        page.get_by_role("button", name="Approve and generate").wait_for()
        assert page.get_by_label("S1-L3 title").input_value() == "Your first script, line by line"
        shot("p3-plan-saved.png")
        page.get_by_role("button", name="Approve and generate").click()
        page.wait_for_url(f"{base}/ui/jobs/{job['id']}")
        page.get_by_role("link", name="Course", exact=True).wait_for(timeout=180_000)
        shot("p4-job-done.png")
        course = _api(base, f"/v1/jobs/{job['id']}/course")
    titles = [lesson["title"] for lesson in course["sections"][0]["lessons"]]
    assert titles[1:] == ["Reading what the user types", "Your first script, line by line"], titles
    assert course["metadata"]["learning_outcomes"][0]["text"] == good
