"""SCORM packages launched in headless Chromium with a real SCORM run-time from npm
(scorm-again, installed into lms/node_modules) acting as the LMS, everything served on
127.0.0.1: each lesson's SCO initializes, reports completion, its raw score and pass/fail
against the mastery score from the config, then commits and terminates."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from course_helpers import sample_course

from courseforge.config.settings import ExportSettings
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


def _launch(page: Any, base: str, version: str, answers: dict[str, str]) -> list[list[str]]:
    page.goto(f"{base}/lms-{version}.html")
    frame = page.frame_locator("#sco")
    frame.locator("#sco-submit").wait_for()
    for name, value in answers.items():
        frame.locator(f'input[name="{name}"][value="{value}"]').check()
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


@pytest.mark.browser
@pytest.mark.parametrize("version", ["1.2", "2004"])
def test_sco_reports_to_a_real_scorm_runtime(tmp_path: Path, version: str) -> None:
    chromium = shutil.which("chromium")
    if chromium is None or not RUNTIME.exists():
        pytest.skip("needs Debian's chromium and lms/node_modules (make setup)")
    from playwright.sync_api import sync_playwright

    mastery = ExportSettings().mastery_score  # the config's default
    fmt = "scorm12" if version == "1.2" else "scorm2004"
    package = tmp_path / f"{fmt}.zip"
    export_course(sample_course(), fmt, package, mastery_score=mastery)
    site = tmp_path / "site"
    zipfile.ZipFile(package).extractall(site / "pkg")
    script = "scorm12.js" if version == "1.2" else "scorm2004.js"
    shutil.copy(RUNTIME / script, site / script)
    names = (
        dict(
            cls="Scorm12API",
            init="LMSInitialize",
            commit="LMSCommit",
            finish="LMSFinish",
            set="LMSSetValue",
            glob="API",
        )
        if version == "1.2"
        else dict(
            cls="Scorm2004API",
            init="Initialize",
            commit="Commit",
            finish="Terminate",
            set="SetValue",
            glob="API_1484_11",
        )
    )
    glob = names.pop("glob")
    (site / f"lms-{version}.html").write_text(
        _LMS.format(script=script, sco="pkg/S1-L1.html", **{"global": glob}, **names), "utf-8"
    )
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
