"""The dashboard (/ui/) through Starlette's TestClient: sessions, CSRF, pages, review actions
(the real-browser run is test_ui_browser.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from service_helpers import AUTH, TOKEN, body, service, wait_for

from courseforge.config import Settings
from courseforge.testing import CourseAuthor
from engine_helpers import scripted_models


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field in the page"
    return found.group(1)


def sign_in(client: TestClient) -> str:
    """Signs the client in through the form; returns a page's CSRF token."""
    form = client.get("/ui/login")
    assert form.status_code == 200
    r = client.post("/ui/login", data={"token": TOKEN, "csrf": _csrf(form.text)}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/ui/"
    cookie = r.headers["set-cookie"]
    assert "cf_session=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Path=/ui" in cookie
    page = client.get("/ui/")
    assert page.status_code == 200 and "<h1>Jobs</h1>" in page.text
    return _csrf(page.text)


def test_pages_refuse_without_a_session(settings: Settings, tmp_path: Path) -> None:
    with service(settings, tmp_path) as client:
        for path in (
            "/ui/",
            "/ui/jobs/job-x",
            "/ui/jobs/job-x/course",
            "/ui/jobs/job-x/report",
            "/ui/reviews",
            "/ui/evals",
        ):
            r = client.get(path, follow_redirects=False)
            assert r.status_code == 303 and r.headers["location"] == "/ui/login", path
            # ...and a bearer token is no way in: the dashboard only takes its session.
            assert client.get(path, headers=AUTH, follow_redirects=False).status_code == 303, path
        assert client.get("/ui/jobs/job-x/events").status_code == 401
        for path in ("/ui/jobs", "/ui/reviews/r-1", "/ui/jobs/job-x/cancel"):
            r = client.post(path, data={"csrf": "x"}, follow_redirects=False)
            assert r.status_code in (303, 401), path
        assert client.get("/v1/jobs", headers=AUTH).json()["jobs"] == []  # nothing was submitted
        # A forged session cookie is no session either.
        client.cookies.set("cf_session", "forged", path="/ui")
        assert client.get("/ui/", follow_redirects=False).status_code == 303


def test_sign_in_needs_the_token_and_the_form_nonce(settings: Settings, tmp_path: Path) -> None:
    with service(settings, tmp_path) as client:
        nonce = _csrf(client.get("/ui/login").text)
        wrong = client.post("/ui/login", data={"token": "nope", "csrf": nonce}, follow_redirects=False)
        assert wrong.status_code == 401 and "not accepted" in wrong.text
        assert "cf_session" not in wrong.headers.get("set-cookie", "")
        nonce = _csrf(wrong.text)
        stale = client.post("/ui/login", data={"token": TOKEN, "csrf": "other"}, follow_redirects=False)
        assert stale.status_code == 400 and "cf_session" not in stale.headers.get("set-cookie", "")
        csrf = sign_in(client)
        # A POST without the session's form token is refused and changes nothing.
        r = client.post("/ui/jobs", data={"analysis": json.dumps(body()), "csrf": "bad"})
        assert r.status_code == 403
        assert client.get("/v1/jobs", headers=AUTH).json()["jobs"] == []
        out = client.post("/ui/logout", data={"csrf": csrf}, follow_redirects=False)
        assert out.status_code == 303
        assert client.get("/ui/", follow_redirects=False).status_code == 303


def test_submit_follow_and_read_a_job(settings: Settings, tmp_path: Path) -> None:
    with service(settings, tmp_path) as client:
        csrf = sign_in(client)
        bad = client.post("/ui/jobs", data={"analysis": '{"topic": 1}', "csrf": csrf})
        assert bad.status_code == 422 and "topic" in bad.text
        assert "{&quot;topic&quot;: 1}" in bad.text  # what was typed is kept, escaped
        r = client.post(
            "/ui/jobs", data={"analysis": json.dumps(body()), "csrf": csrf}, follow_redirects=False
        )
        assert r.status_code == 303
        job_id = r.headers["location"].rsplit("/", 1)[1]
        done = wait_for(client, job_id)
        assert done["status"] == "completed"
        with client.stream("GET", f"/ui/jobs/{job_id}/events") as events:
            text = "".join(events.iter_text())
        assert "event: snapshot" in text and '"status": "completed"' in text
        page = client.get(f"/ui/jobs/{job_id}").text
        assert f'href="/ui/jobs/{job_id}/course"' in page and f'href="/ui/jobs/{job_id}/report"' in page
        assert page.count("<progress") == len(done["progress"]["phases"])
        # Spent against budget: each progress event carried the spend so far (the running job's
        # page updates it live); the finished page reads the report's total.
        assert 0 < done["progress"]["spent_usd"] <= done["progress"]["budget_usd"]
        assert '"spent_usd"' in text
        stored_total = client.get(f"/v1/jobs/{job_id}/report", headers=AUTH).json()["total_cost_usd"]
        assert f"spent <span data-spent>${float(stored_total):.4f}</span> of" in page
        budget = client.get(f"/v1/jobs/{job_id}/report", headers=AUTH).json()["budget_usd"]
        listed = client.get("/ui/").text  # the jobs page reads every row's cost in one query
        assert f"<td>${float(stored_total):.4f} of ${float(budget):.2f}</td>" in listed
        course = client.get(f"/ui/jobs/{job_id}/course").text
        stored = client.get(f"/v1/jobs/{job_id}/course", headers=AUTH).json()
        lessons = [x for s in stored["sections"] for x in s["lessons"]]
        assert course.count('<article class="lesson"') == len(lessons)
        exercises = sum(len(x["exercises"]) for x in lessons)
        assert course.count("<summary>Show the answer</summary>") == exercises > 0
        report = client.get(f"/ui/jobs/{job_id}/report")
        assert report.headers["content-security-policy"].startswith("default-src 'none'")
        stored_report = client.get(f"/v1/jobs/{job_id}/report", headers=AUTH).json()
        assert report.text.count('class="call ') == len(stored_report["calls"])
        assert client.get("/ui/jobs/nope").status_code == 404
        for asset in ("views.css", "dashboard.css", "app.js"):
            assert client.get(f"/ui/static/{asset}").status_code == 200
        assert client.get("/ui/static/..%2Fapp.py").status_code == 404


def test_review_actions_from_the_queue(settings: Settings, tmp_path: Path) -> None:
    def off_topic(brief: dict[str, object]) -> bool:
        return str(brief.get("lesson_title", "")).endswith("part 1)")

    models = scripted_models(settings, lambda _m: CourseAuthor(off_topic=off_topic))
    with service(settings, tmp_path, models=models) as client:
        csrf = sign_in(client)
        job = client.post("/v1/jobs", json=body(), headers=AUTH).json()
        assert wait_for(client, job["id"])["course_status"] == "needs_review"
        items = client.get("/v1/reviews", headers=AUTH).json()["reviews"]
        lessons = [r for r in items if r["target"].startswith("S")]
        assert len(lessons) >= 2
        queue = client.get("/ui/reviews").text
        shown = re.findall(r'data-review="([^"]+)"', queue)
        assert shown == [r["id"] for r in items]  # ranked as the API ranks: most uncertain first
        first, second = lessons[0], lessons[1]
        r = client.post(
            f"/ui/reviews/{first['id']}", data={"action": "approve", "csrf": csrf}, follow_redirects=False
        )
        assert r.status_code == 303
        assert (
            client.get("/v1/reviews", params={"status": "approved"}, headers=AUTH).json()["reviews"][0]["id"]
            == first["id"]
        )
        # Approving it again is refused with the API's reason.
        again = client.post(f"/ui/reviews/{first['id']}", data={"action": "approve", "csrf": csrf})
        assert "already answered" in again.text
        # An edit is re-gated: a stub of a lesson fails the gates and goes back to the queue.
        r = client.post(
            f"/ui/reviews/{second['id']}",
            data={"action": "edit", "content": "# Stub\nToo short.", "csrf": csrf},
        )
        assert "still flagged" in r.text
        item = next(
            i for i in client.get("/v1/reviews", headers=AUTH).json()["reviews"] if i["id"] == second["id"]
        )
        assert item["status"] == "open" and item["resolution"]["regate_failed"]
        assert any(not g["passed"] for g in item["resolution"]["regated"])
        course = client.get(f"/v1/jobs/{job['id']}/course", headers=AUTH).json()
        edited = next(x for s in course["sections"] for x in s["lessons"] if x["id"] == second["target"])
        assert edited["content"] == "# Stub\nToo short." and course["status"] == "needs_review"
        # Regenerate runs in the background through the API's own path.
        r = client.post(
            f"/ui/reviews/{second['id']}",
            data={"action": "regenerate", "note": "on topic", "best_quality": "1", "csrf": csrf},
        )
        assert r.status_code == 200
        # The reviewer's "needs the best quality" reaches the item (seed 001: straight to premium).
        # The background run may already have moved the item on: look in every list it can be in.
        status = client.get("/v1/reviews", params={"status": "regenerating"}, headers=AUTH).json()["reviews"]
        finished = client.get("/v1/reviews", params={"status": "regenerated"}, headers=AUTH).json()["reviews"]
        reopened = client.get("/v1/reviews", headers=AUTH).json()["reviews"]
        regenerating = next(i for i in [*status, *finished, *reopened] if i["id"] == second["id"])
        assert regenerating["resolution"]["best_quality"] is True
        bad = client.post(f"/ui/reviews/{first['id']}", data={"action": "dance", "csrf": csrf})
        assert "refused" in bad.text


@pytest.mark.parametrize("present", [True, False])
def test_evals_page(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, present: bool
) -> None:
    root = tmp_path / "evals"
    if present:
        (root / "run-a").mkdir(parents=True)
        (root / "run-a" / "eval.json").write_text(json.dumps({"courses": 3, "scores": {"mean": 0.8125}}))
        (root / "run-b").mkdir()
        (root / "run-b" / "eval.json").write_text("{broken")
    monkeypatch.setenv("COURSEFORGE_EVALS_DIR", str(root))
    with service(settings, tmp_path) as client:
        sign_in(client)
        page = client.get("/ui/evals").text
    if present:
        assert '<th scope="col">scores.mean</th>' in page and "<td>0.8125</td>" in page
        assert "run-b" in page and "unreadable" in page
    else:
        assert "No eval results found." in page


@pytest.mark.parametrize("form", [{}, {"csrf": "stale"}])
def test_sign_out_ends_the_server_session_whatever_the_form_holds(
    settings: Settings, tmp_path: Path, form: dict[str, str]
) -> None:
    with service(settings, tmp_path) as client:
        sign_in(client)
        cookie = client.cookies.get("cf_session")
        assert cookie and client.get("/ui/", follow_redirects=False).status_code == 200
        out = client.post("/ui/logout", data=form, follow_redirects=False)
        assert out.status_code == 303 and "cf_session" in out.headers.get("set-cookie", "")
        client.cookies.set("cf_session", cookie, path="/ui")  # the cookie, copied before, replayed
        assert client.get("/ui/", follow_redirects=False).status_code == 303  # to sign-in: ended
