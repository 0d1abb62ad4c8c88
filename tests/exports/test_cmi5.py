"""`cmi5`: the package's course structure, and an AU launched in headless Chromium against a real
LRS on 127.0.0.1 (Ralph, `ralph-malph` from PyPI, in its own virtualenv `.venv-lrs` built by
`make lrs`), its xAPI statements read back from the LRS — through our own launch handshake, and
through @xapi/cmi5's bundle (lms/node_modules, `make deps-npm`). Ralph has no State API, which
the library needs for LMS.LaunchData: the test's LMS serves that document itself, as an LMS
does, and passes the rest of the xAPI requests on to Ralph."""

from __future__ import annotations

import base64
import functools
import http.server
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import pytest
from course_helpers import sample_course

from courseforge.errors import UserError
from courseforge.exports import export_course
from courseforge.exports.cmi5 import CMI5_NS, LIBRARY_SCRIPT, au_id

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = ROOT / "lms" / "node_modules" / "@xapi" / "cmi5" / "dist" / "Cmi5.umd.js"
LRS_PYTHON = Path(os.environ.get("COURSEFORGE_LRS_PYTHON", ROOT / ".venv-lrs" / "bin" / "python"))
USER, PASSWORD = "lms", "lms-secret-7d1"
VERBS = "http://adlnet.gov/expapi/verbs/"


def test_the_course_structure_has_one_au_per_lesson(tmp_path: Path) -> None:
    course = sample_course()
    result = export_course(course, "cmi5", tmp_path / "course.zip", mastery_score=70)
    archive = zipfile.ZipFile(tmp_path / "course.zip")
    root = ET.fromstring(archive.read("cmi5.xml"))
    ns = {"c": CMI5_NS}
    assert root.tag == f"{{{CMI5_NS}}}courseStructure"
    assert root.find("c:course", ns).get("id") == au_id(course)  # type: ignore[union-attr]
    aus = root.findall("c:block/c:au", ns)
    assert [au.get("id") for au in aus] == [au_id(course, x.id) for x in course.lessons()]
    assert {au.get("masteryScore") for au in aus} == {"0.7"}
    assert all(au.findtext("c:url", namespaces=ns) in archive.namelist() for au in aus)
    assert "courseforge-au.js" in archive.namelist() and result.lessons == len(aus)


def test_the_cmi5_library_goes_into_the_package_or_is_refused_by_name(tmp_path: Path) -> None:
    not_it = tmp_path / "other.js"
    not_it.write_text("console.log('hello');", "utf-8")
    for missing in (tmp_path / "absent.js", not_it):
        with pytest.raises(UserError) as refused:
            export_course(sample_course(), "cmi5", tmp_path / "c.zip", cmi5_library=missing)
        assert refused.value.problems[0][0] == "exports.cmi5_library"
        assert not (tmp_path / "c.zip").exists()
    if not LIBRARY.exists():
        pytest.skip("needs @xapi/cmi5 in lms/node_modules (make deps-npm)")
    export_course(sample_course(), "cmi5", tmp_path / "c.zip", cmi5_library=LIBRARY)
    archive = zipfile.ZipFile(tmp_path / "c.zip")
    assert archive.read(LIBRARY_SCRIPT) == LIBRARY.read_bytes()
    page = archive.read("S1-L1.html").decode()
    assert page.index(f'src="{LIBRARY_SCRIPT}"') < page.index('src="courseforge-au.js"')


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Site(http.server.SimpleHTTPRequestHandler):
    """The LMS's side: the unpacked package, the cmi5 fetch URL (one auth token), and under
    /xapi/ the LRS: LMS.LaunchData (the State API) here, everything else passed on to Ralph."""

    lrs: ClassVar[str] = ""
    launch_data: ClassVar[dict[str, Any]] = {}

    def _reply(self, status: int, body: bytes, kind: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _xapi(self) -> None:
        path = self.path.removeprefix("/xapi/")
        if path.startswith("activities/state"):
            if self.command == "GET" and "stateId=LMS.LaunchData" in path:
                self._reply(200, json.dumps(self.launch_data).encode())
            else:
                self._reply(204, b"")
            return
        if path.startswith("agents/profile"):
            self._reply(404, b"{}")
            return
        length = int(self.headers.get("Content-Length") or 0)
        headers = {
            k: v
            for k, v in self.headers.items()
            if k.lower() in ("authorization", "content-type", "x-experience-api-version")
        }
        request = urllib.request.Request(
            self.lrs + path,
            data=self.rfile.read(length) if length else None,
            method=self.command,
            headers=headers,
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                self._reply(
                    response.status, response.read(), response.headers.get("Content-Type", "application/json")
                )
        except urllib.error.HTTPError as exc:
            self._reply(exc.code, exc.read())

    def do_GET(self) -> None:
        if self.path.startswith("/xapi/"):
            self._xapi()
        else:
            super().do_GET()

    def do_PUT(self) -> None:
        self._xapi()

    def do_POST(self) -> None:
        if self.path.startswith("/xapi/"):
            self._xapi()
            return
        if not self.path.startswith("/fetch"):
            self.send_error(404)
            return
        token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        self._reply(200, json.dumps({"auth-token": token}).encode())

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def _site(root: Path) -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Site, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


#: Ralph's LRS under uvicorn. Its file-system backend (the one that needs no database server)
#: creates its statements file on the first write and refuses the next ("already exists"):
#: made to append, the only change to the LRS.
_SERVE = """
import sys, uvicorn
from ralph.backends.data.base import BaseOperationType
from ralph.backends.lrs.fs import FSLRSBackend
FSLRSBackend.default_operation_type = BaseOperationType.APPEND
uvicorn.run("ralph.api:app", host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


@contextmanager
def _ralph(tmp_path: Path, origin: str) -> Iterator[str]:
    """Ralph's LRS (file-system backend) on 127.0.0.1, with one Basic-auth user."""
    env = {
        **os.environ,
        "RALPH_APP_DIR": str(tmp_path / "ralph"),
        "RALPH_AUTH_FILE": str(tmp_path / "ralph" / "auth.json"),
        "RALPH_RUNSERVER_BACKEND": "fs",
        "RALPH_BACKENDS__LRS__FS__DEFAULT_DIRECTORY_PATH": str(tmp_path / "ralph"),
        "RALPH_RUNSERVER_CORS_ALLOW_ORIGINS": json.dumps([origin]),
    }
    (tmp_path / "ralph").mkdir()
    ralph = [str(LRS_PYTHON), "-m", "ralph"]
    subprocess.run(
        [*ralph, "auth", "-u", USER, "-p", PASSWORD, "-s", "all", "-M", "mailto:lms@courseforge.org", "-w"],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    port = _port()
    server = subprocess.Popen(
        [str(LRS_PYTHON), "-c", _SERVE, str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}/xAPI/"
    try:
        for _ in range(600):  # the LRS imports for a few seconds on a loaded machine
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/__heartbeat__", timeout=1)
                break
            except OSError:
                if server.poll() is not None:
                    raise AssertionError(
                        server.stderr.read().decode() if server.stderr else "ralph died"
                    ) from None
                time.sleep(0.1)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)


def _lrs(base: str, path: str, body: Any = None) -> Any:
    request = urllib.request.Request(
        base + path,
        data=None if body is None else json.dumps(body).encode(),
        method="GET" if body is None else "POST",
        headers={
            "Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode(),
            "X-Experience-API-Version": "1.0.3",
            "Content-Type": "application/json",
        },
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.mark.browser
@pytest.mark.parametrize("client", ["own", "xapi-cmi5"])
def test_an_au_sends_its_statements_to_a_real_lrs(tmp_path: Path, client: str) -> None:
    chromium = shutil.which("chromium")
    if chromium is None or not LRS_PYTHON.exists():
        pytest.skip("needs Debian's chromium and the LRS virtualenv .venv-lrs (make lrs)")
    library = LIBRARY if client == "xapi-cmi5" else None
    if library is not None and not library.exists():
        pytest.skip("needs @xapi/cmi5 in lms/node_modules (make deps-npm)")
    from playwright.sync_api import sync_playwright

    course = sample_course()
    export_course(course, "cmi5", tmp_path / "course.zip", mastery_score=80, cmi5_library=library)
    zipfile.ZipFile(tmp_path / "course.zip").extractall(tmp_path / "site")
    actor = {"objectType": "Agent", "name": "Ada", "account": {"homePage": "https://lms.test", "name": "ada"}}
    runs = {"right": {"I_S1-L1_E1": "1", "I_S1-L1_E2": "0"}, "wrong": {"I_S1-L1_E1": "0", "I_S1-L1_E2": "0"}}
    registrations = {name: str(uuid.uuid4()) for name in runs}
    activity = au_id(course, "S1-L1")
    with _site(tmp_path / "site") as site, _ralph(tmp_path, site) as lrs, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"], headless=True)
        try:
            for name, answers in runs.items():
                registration = registrations[name]
                # The LMS's own statement, as cmi5 prescribes, then the launch.
                launched = {"id": f"{VERBS}launched", "display": {"en-US": "launched"}}
                _lrs(
                    lrs,
                    "statements",
                    {
                        "actor": actor,
                        "verb": launched,
                        "object": {"id": activity},
                        "context": {"registration": registration},
                    },
                )
                _Site.lrs = lrs
                _Site.launch_data = {
                    "contextTemplate": {
                        "contextActivities": {"grouping": [{"id": activity}]},
                        "extensions": {
                            "https://w3id.org/xapi/cmi5/context/extensions/sessionid": str(uuid.uuid4())
                        },
                    },
                    "launchMode": "Normal",
                    "moveOn": "CompletedAndPassed",
                    "masteryScore": 0.8,
                }
                query = urllib.parse.urlencode(
                    {
                        "endpoint": f"{site}/xapi/",
                        "fetch": f"{site}/fetch",
                        "actor": json.dumps(actor),
                        "registration": registration,
                        "activityId": activity,
                    }
                )
                page = browser.new_page()
                page.goto(f"{site}/S1-L1.html?{query}")
                page.wait_for_function("document.getElementById('au-status').textContent.length > 0")
                assert "Started" in (page.locator("#au-status").text_content() or "")
                for field, value in answers.items():
                    page.locator(f'input[name="{field}"][value="{value}"]').check()
                page.locator("#au-submit").click()
                page.locator("#au-status").filter(has_text="Sent").wait_for()
        finally:
            browser.close()
        received = {
            name: _lrs(lrs, "statements?" + urllib.parse.urlencode({"registration": reg, "limit": 50}))[
                "statements"
            ]
            for name, reg in registrations.items()
        }
    verbs = {name: sorted(s["verb"]["id"].removeprefix(VERBS) for s in st) for name, st in received.items()}
    print(verbs)  # the evidence in the closing note
    assert verbs["right"] == sorted(
        ["launched", "initialized", "answered", "answered", "passed", "completed", "terminated"]
    )
    assert verbs["wrong"] == sorted(
        ["launched", "initialized", "answered", "answered", "failed", "completed", "terminated"]
    )
    right = {s["verb"]["id"].removeprefix(VERBS): s for s in received["right"]}
    assert right["passed"]["result"]["score"]["scaled"] == 1 and right["passed"]["object"]["id"] == activity
    assert right["passed"]["actor"]["account"]["name"] == "ada"
    answered = [s for s in received["wrong"] if s["verb"]["id"].endswith("answered")]
    assert sorted(s["result"]["success"] for s in answered) == [False, True]
    question = f"{activity}/" if client == "own" else f"{activity}/test/quiz/question/"
    assert {s["object"]["id"] for s in answered} == {f"{question}I_S1-L1_E1", f"{question}I_S1-L1_E2"}
    if client == "xapi-cmi5":  # the library's statements carry the LMS's context template
        assert all(
            s["context"]["contextActivities"]["grouping"][0]["id"] == activity for s in received["right"][1:]
        )
