"""SCORM packages launched in headless Chromium with a real SCORM run-time from npm
(scorm-again, installed into lms/node_modules) acting as the LMS, everything served on
127.0.0.1: each lesson's SCO initializes, reports completion, its raw score and pass/fail
against the mastery score from the config, then commits and terminates."""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from course_helpers import sample_course, sample_course_data

from courseforge.config.settings import ExportSettings
from courseforge.domain import Course
from courseforge.exports import export_course

RUNTIME = Path(__file__).resolve().parents[2] / "lms" / "node_modules" / "scorm-again" / "dist"

_LMS = """<!DOCTYPE html><html><head><meta charset="utf-8"><script src="{script}"></script><script>
window.calls = [];
var api = new {cls}({{autocommit: false, logLevel: 5}});
window.{global} = api;
["{init}", "{commit}", "{finish}"].forEach(function (name) {{
  api.on(name, function () {{ window.calls.push([name]); }});
}});
api.on("{set}.cmi.*", function (element, value) {{ window.calls.push(["{set}", element, String(value)]); }});
</script></head><body><iframe id="sco" src="{sco}" width="900" height="700"></iframe></body></html>"""


@contextmanager
def _serve(root: Path) -> Iterator[str]:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _launch(
    page: Any, base: str, version: str, answers: dict[str, str], typed: dict[str, str] | None = None
) -> list[list[str]]:
    page.goto(f"{base}/lms-{version}.html")
    frame = page.frame_locator("#sco")
    frame.locator("#sco-submit").wait_for()
    for name, value in answers.items():
        frame.locator(f'input[name="{name}"][value="{value}"]').check()
    for name, value in (typed or {}).items():
        frame.locator(f'input[name="{name}"]').fill(value)
    frame.locator("#sco-submit").click()
    frame.locator("#sco-status").filter(has_text="Score").wait_for()
    calls: list[list[str]] = page.evaluate("window.calls")
    return calls


def _leave(page: Any, base: str, version: str, finish: str) -> list[list[str]]:
    """Open the lesson, then leave it without submitting (the LMS unloads the SCO's frame)."""
    page.goto(f"{base}/lms-{version}.html")
    page.frame_locator("#sco").locator("#sco-submit").wait_for()
    page.evaluate("document.getElementById('sco').src = 'about:blank'")
    page.wait_for_function(
        f"window.calls.length > 0 && window.calls[window.calls.length - 1][0] === '{finish}'"
    )
    calls: list[list[str]] = page.evaluate("window.calls")
    return calls


_NAMES = {
    "1.2": dict(
        cls="Scorm12API", init="LMSInitialize", commit="LMSCommit", finish="LMSFinish", set="LMSSetValue"
    ),
    "2004": dict(cls="Scorm2004API", init="Initialize", commit="Commit", finish="Terminate", set="SetValue"),
}


def _lms_site(tmp_path: Path, course: Course, version: str) -> tuple[Path, dict[str, str]]:
    """The course's package unpacked beside a page that runs scorm-again as the LMS."""
    chromium = shutil.which("chromium")
    if chromium is None or not RUNTIME.exists():
        pytest.skip("needs Debian's chromium and lms/node_modules (make setup)")
    mastery = ExportSettings().mastery_score  # the config's default
    fmt = "scorm12" if version == "1.2" else "scorm2004"
    package = tmp_path / f"{fmt}.zip"
    export_course(course, fmt, package, mastery_score=mastery)
    site = tmp_path / "site"
    zipfile.ZipFile(package).extractall(site / "pkg")
    script = "scorm12.js" if version == "1.2" else "scorm2004.js"
    shutil.copy(RUNTIME / script, site / script)
    names = _NAMES[version]
    glob = "API" if version == "1.2" else "API_1484_11"
    (site / f"lms-{version}.html").write_text(
        _LMS.format(script=script, sco="pkg/S1-L1.html", **{"global": glob}, **names), "utf-8"
    )
    return site, names


@pytest.mark.browser
@pytest.mark.parametrize("version", ["1.2", "2004"])
def test_sco_reports_to_a_real_scorm_runtime(tmp_path: Path, version: str) -> None:
    from playwright.sync_api import sync_playwright

    site, names = _lms_site(tmp_path, sample_course(), version)
    chromium = shutil.which("chromium")
    right = {"I_S1-L1_E1": "1", "I_S1-L1_E2": "0"}  # "print", "True"
    wrong = {"I_S1-L1_E1": "0", "I_S1-L1_E2": "1"}
    with _serve(site) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"], headless=True)
        try:
            observed = {
                "right": _launch(browser.new_page(), base, version, right),
                "wrong": _launch(browser.new_page(), base, version, wrong),
            }
            left = _leave(browser.new_page(), base, version, names["finish"])
        finally:
            browser.close()
    print({**observed, "left": left})  # the evidence in the closing note
    # leaving without submitting: still incomplete, no score, suspended, committed and ended
    assert [c[0] for c in left][-2:] == [names["commit"], names["finish"]]
    left_values = {c[1]: c[2] for c in left if c[0] == names["set"]}
    status_key = "cmi.core.lesson_status" if version == "1.2" else "cmi.completion_status"
    assert left_values[status_key] == "incomplete" and not any("score" in k for k in left_values)
    assert left_values["cmi.core.exit" if version == "1.2" else "cmi.exit"] == "suspend"
    for outcome, calls in observed.items():
        kinds = [c[0] for c in calls]
        assert kinds[0] == names["init"] and kinds[-2:] == [names["commit"], names["finish"]], calls
        values = {c[1]: c[2] for c in calls if c[0] == names["set"]}
        score, status = ("100", "passed") if outcome == "right" else ("0", "failed")
        if version == "1.2":
            assert values["cmi.core.score.raw"] == score and values["cmi.core.lesson_status"] == status
        else:
            assert values["cmi.score.raw"] == score and values["cmi.success_status"] == status
            assert values["cmi.completion_status"] == "completed"
            assert values["cmi.score.scaled"] == ("1" if outcome == "right" else "0")


_HOSTILE = "<!-- <script>"  # opens a comment inside a script: the rest of the page was swallowed


def _hostile_course() -> Course:
    """A web-development lesson: `<!--`, `<script>` and `</script>` in its text, its code, its
    questions, options and graded answers."""
    data = sample_course_data()
    lesson = data["sections"][0]["lessons"][0]
    lesson["content"] = (
        "Open a comment with `<!--` and a script with `<script>`; `</script>` ends it.\n\n"
        "```html\n<!-- <script>alert(1)</script> -->\n<script>document.write('</script>')</script>\n```\n\n"
        "Raw, in prose: <!-- <script> </script> and ]]> too."
    )
    base = dict(outcome_ids=["LO1"], explanation="<!-- </script> <script>")
    lesson["exercises"] = [
        dict(
            base,
            id="E1",
            type="multiple_choice",
            question="Which tag starts a script? <script>",
            options=["<!--", "<script>", "</script>"],
            answer="<script>",
        ),
        dict(base, id="E2", type="short_answer", question="What opens an HTML comment?", answer=_HOSTILE),
        dict(base, id="E3", type="short_answer", question="What ends a script element?", answer="</script>"),
    ]
    return Course.model_validate(data)


def test_the_sco_data_is_inert_json_whatever_the_answers() -> None:
    from courseforge.exports.scorm import sco_data

    text = sco_data("1.2", 80.0, {"I_S1-L1_E2": _HOSTILE, "x": "</script> & <!--"})
    assert not set("<>&") & set(text)  # nothing the HTML parser could read as markup
    assert json.loads(text)["key"] == {"I_S1-L1_E2": _HOSTILE, "x": "</script> & <!--"}


@pytest.mark.browser
@pytest.mark.parametrize("version", ["1.2", "2004"])
def test_a_lesson_full_of_script_strings_still_reports_to_the_lms(tmp_path: Path, version: str) -> None:
    from playwright.sync_api import sync_playwright

    site, names = _lms_site(tmp_path, _hostile_course(), version)
    page_html = (site / "pkg" / "S1-L1.html").read_text("utf-8")
    assert '<script type="application/json" id="courseforge-sco-data">' in page_html
    chromium = shutil.which("chromium")
    typed = {"I_S1-L1_E2": _HOSTILE, "I_S1-L1_E3": "</script>"}
    with _serve(site) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"], headless=True)
        try:
            page = browser.new_page()
            calls = _launch(page, base, version, {"I_S1-L1_E1": "1"}, typed)
            status = page.frame_locator("#sco").locator("#sco-status").inner_text()
            codes = page.frame_locator("#sco").locator("code").all_inner_texts()
        finally:
            browser.close()
    print(calls, status)  # the evidence in the closing note
    values = {c[1]: c[2] for c in calls if c[0] == names["set"]}
    assert [c[0] for c in calls][-2:] == [names["commit"], names["finish"]]
    assert values["cmi.core.score.raw" if version == "1.2" else "cmi.score.raw"] == "100"
    assert status == "Score: 100 / 100 (3 of 3 right)."
    # the page shows the strings as written, and none of them ran or hid the page
    assert codes[:3] == ["<!--", "<script>", "</script>"]
    assert codes[3].startswith("<!-- <script>alert(1)</script> -->")
