"""The dashboard's "Submit a course" form in headless Chromium: a section without key concepts is
refused with the reason beside that field (what was typed kept), a section added, one removed,
two reordered; the job runs and the jobs list shows its spend against its budget; a JSON file
read into the JSON box submits as well. Screenshots as in test_ui_browser."""

from __future__ import annotations

import json
import re
import sqlite3
import urllib.request
from pathlib import Path

import pytest
from service_helpers import TOKEN
from test_ui_browser import _sign_in, artefacts, browser_page, dashboard  # noqa: F401 (fixture)

from engine_helpers import example_data

pytestmark = pytest.mark.browser


def test_an_author_submits_a_course_through_the_form(tmp_path: Path, artefacts: Path) -> None:  # noqa: F811
    from playwright.sync_api import expect

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
        expect(page.locator("#analysis")).to_have_value(re.compile("from-a-file"))
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


def test_source_files_and_a_bank_go_with_a_course_from_the_form(tmp_path: Path, artefacts: Path) -> None:  # noqa: F811
    """Two source files picked: each read into a source row (the second row added for it); an
    emptied source refused beside its field; a GIFT bank read into its box; the job stored with
    the sources as `source_material` and the bank's questions."""
    from playwright.sync_api import expect

    notes = tmp_path / "light-reactions.md"
    notes.write_text(
        "# Light reactions\n\nChlorophyll absorbs light; water is split and oxygen released.\n", "utf-8"
    )
    cycle = tmp_path / "calvin-cycle.txt"
    cycle.write_text("The Calvin cycle fixes carbon dioxide into sugars using ATP and NADPH.\n", "utf-8")
    bank = tmp_path / "bank.gift"
    bank.write_text(
        "::PH-1:: Which gas do plants release in the light reactions? {=oxygen ~carbon dioxide ~nitrogen}\n\n"
        "::PH-2:: The Calvin cycle fixes carbon dioxide into sugars. {T}\n",
        "utf-8",
    )
    with dashboard(tmp_path) as base, browser_page(artefacts) as page:
        _sign_in(page, base)
        page.get_by_label("Topic").fill("Photosynthesis")
        page.get_by_label("Audience").fill("Secondary school students")
        for i, (title, concepts) in enumerate(
            [("Light reactions", "chlorophyll, oxygen"), ("The Calvin cycle", "carbon fixation, sugars")]
        ):
            page.get_by_label(f"section {i + 1} title").fill(title)
            page.get_by_label(f"section {i + 1} key concepts (comma-separated)").fill(concepts)
        page.get_by_label("Source files (text or Markdown)").set_input_files([str(notes), str(cycle)])
        page.locator("#sources[data-read='2']").wait_for(state="attached")
        assert page.get_by_label("source 1 title").input_value() == "light-reactions"
        assert page.get_by_label("source 2 title").input_value() == "calvin-cycle"
        assert "Calvin cycle fixes" in page.get_by_label("source 2 text").input_value()
        page.get_by_label("Bank file (GIFT or Moodle XML)").set_input_files(str(bank))
        expect(page.locator("#question_bank")).to_have_value(re.compile("PH-2"))

        page.get_by_label("source 2 text").fill("")  # a title without text: refused beside the text
        page.get_by_role("button", name="Submit job").click()
        error = page.locator("#m1-text-err")
        error.wait_for()
        assert page.get_by_label("source 2 text").get_attribute("aria-invalid") == "true"
        assert page.get_by_label("source 1 title").input_value() == "light-reactions"  # kept
        page.screenshot(path=str(artefacts / "s4-sources-refused.png"), full_page=True)

        page.get_by_label("source 2 text").fill(cycle.read_text("utf-8"))
        page.screenshot(path=str(artefacts / "s5-sources-filled.png"), full_page=True)
        page.get_by_role("button", name="Submit job").click()
        page.wait_for_url(re.compile(rf"{base}/ui/jobs/job-.*"))
        job_id = page.url.rsplit("/", 1)[1]
    with sqlite3.connect(tmp_path / "ui.db") as db:
        analysis, progress = db.execute(
            "SELECT analysis, progress FROM jobs WHERE id = ?", (job_id,)
        ).fetchone()
    sources = json.loads(analysis)["source_material"]
    assert [(s["id"], s["title"]) for s in sources] == [
        ("source-1", "light-reactions"),
        ("source-2", "calvin-cycle"),
    ]
    assert sources[0]["text"] == notes.read_text("utf-8").strip()  # newlines as typed, ends trimmed
    assert [q["id"] for q in json.loads(progress)["bank"]] == ["PH-1", "PH-2"]
