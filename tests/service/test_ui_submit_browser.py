"""The dashboard's "Submit a course" form in headless Chromium: a section without key concepts is
refused with the reason beside that field (what was typed kept), a section added, one removed,
two reordered; the job runs and the jobs list shows its spend against its budget; a JSON file
read into the JSON box submits as well. Screenshots as in test_ui_browser."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

import pytest
from service_helpers import TOKEN
from test_ui_browser import _sign_in, artefacts, browser_page, dashboard  # noqa: F401 (fixture)

from engine_helpers import example_data

pytestmark = pytest.mark.browser


def test_an_author_submits_a_course_through_the_form(tmp_path: Path, artefacts: Path) -> None:  # noqa: F811
    with dashboard(tmp_path) as base, browser_page(artefacts) as page:

        def shot(name: str) -> None:
            page.screenshot(path=str(artefacts / name), full_page=True)
            print(f"  {name}: {page.url}")

        _sign_in(page, base)
        page.get_by_label("Topic").fill("Python programming fundamentals")
        page.get_by_label("Audience").fill("Adults new to programming")
        page.get_by_label("Difficulty").select_option("beginner")
        page.get_by_label("Budget (USD, optional)").fill("0.40")
        rows = [
            ("Getting started", "running Python, variables"),
            ("Repeating work", ""),  # no key concepts: refused beside this field
            ("Making decisions", "booleans, if/else"),
        ]
        for i, (title, concepts) in enumerate(rows):
            page.get_by_label(f"section {i + 1} title").fill(title)
            page.get_by_label(f"section {i + 1} key concepts (comma-separated)").fill(concepts)
        page.get_by_role("button", name="Submit job").click()
        error = page.locator("#s1-concepts-err")
        error.wait_for()
        assert "at least 1 item" in error.inner_text()
        assert page.get_by_label("section 2 title").input_value() == "Repeating work"
        assert (
            page.get_by_label("section 2 key concepts (comma-separated)").get_attribute("aria-invalid")
            == "true"
        )
        shot("s1-form-refused.png")

        page.get_by_label("section 2 key concepts (comma-separated)").fill("for loops, range")
        page.get_by_role("button", name="Add a section").click()
        page.get_by_label("section 4 title").fill("Functions")
        page.get_by_label("section 4 key concepts (comma-separated)").fill("def, return")
        page.get_by_label("section 4 order").fill("0")  # first
        page.locator("#s0-remove").check()  # "Getting started" removed
        page.get_by_label("section 2 order").fill("9")  # "Repeating work" last
        shot("s2-form-filled.png")
        page.get_by_role("button", name="Submit job").click()
        page.wait_for_url(re.compile(rf"{base}/ui/jobs/job-.*"))
        job_id = page.url.rsplit("/", 1)[1]
        page.get_by_role("link", name="Course", exact=True).wait_for(timeout=180_000)
        page.goto(f"{base}/ui/")
        row = page.locator("tr", has=page.get_by_role("link", name=job_id))
        assert re.search(r"\$\d+\.\d{4} of \$0\.40", row.inner_text()), row.inner_text()
        shot("s3-jobs-spent.png")

        analysis = tmp_path / "analysis.json"
        analysis.write_text(json.dumps({**example_data(), "course_id": "from-a-file"}), "utf-8")
        page.get_by_label("JSON file").set_input_files(str(analysis))
        page.wait_for_function("document.getElementById('analysis').value.includes('from-a-file')")
        page.get_by_role("button", name="Submit job").click()
        page.wait_for_url(re.compile(rf"{base}/ui/jobs/job-.*"))
        assert "from-a-file" in page.content()
        request = urllib.request.Request(
            f"{base}/v1/jobs/{job_id}/course", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            course = json.loads(response.read())
    # Removed, added and reordered as the form said.
    assert [s["title"] for s in course["sections"]] == ["Functions", "Making decisions", "Repeating work"]
