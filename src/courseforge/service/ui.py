"""The dashboard under /ui/: sign in with an API token, jobs with live status, a job's live
progress, the course, the report as pictures, the review queue, eval results.

Sign-in is a form POST of the token (never a token in a URL); it opens a server-side session
whose id travels only in an HttpOnly, SameSite=Strict cookie scoped to /ui. Every form carries
the session's CSRF token and every POST checks it. Pages are rendered on the server by
`courseforge.views` (the same code as `courseforge report --html`); the one script
(ui_static/app.js) only follows server-sent events. Every asset ships in the package: no CDN.

Sessions live in the process's memory: a restart signs everyone out. `$COURSEFORGE_EVALS_DIR`
names a directory of `courseforge eval` output directories for the evals page.
"""

from __future__ import annotations

import hmac
import os
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import ValidationError

from ..config import Settings
from ..domain import Course, Report
from ..engine import Engine
from ..errors import UserError
from ..pipeline import parse_analysis, validate_analysis
from ..pipeline.check import check_course
from ..storage import Job, Store
from ..views import course_html, document, esc, evals_html, load_evals, report_html
from .manager import JobManager

__all__ = ["SESSION_COOKIE", "Sessions", "ui_router"]

SESSION_COOKIE = "cf_session"
LOGIN_COOKIE = "cf_login"
SESSION_TTL_S = 8 * 3600
MAX_FORM_BYTES = 2_000_000
_STATIC = {
    "views.css": ("courseforge.views", "views.css", "text/css; charset=utf-8"),
    "dashboard.css": ("courseforge.service", "ui_static/dashboard.css", "text/css; charset=utf-8"),
    "app.js": ("courseforge.service", "ui_static/app.js", "text/javascript; charset=utf-8"),
}
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}
_ID_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-")


@dataclass(slots=True)
class Session:
    csrf: str
    expires: float


@dataclass(slots=True)
class Sessions:
    """Signed-in browsers: session id -> its CSRF token and expiry (in this process)."""

    ttl_s: float = SESSION_TTL_S
    limit: int = 10_000
    _by_id: dict[str, Session] = field(default_factory=dict)

    def open(self) -> str:
        now = time.time()
        for sid in [s for s, v in self._by_id.items() if v.expires <= now]:
            del self._by_id[sid]
        while len(self._by_id) >= self.limit:
            del self._by_id[next(iter(self._by_id))]
        sid = secrets.token_urlsafe(32)
        self._by_id[sid] = Session(csrf=secrets.token_urlsafe(32), expires=now + self.ttl_s)
        return sid

    def get(self, sid: str | None) -> Session | None:
        session = self._by_id.get(sid or "")
        if session is None or session.expires <= time.time():
            return None
        return session

    def close(self, sid: str | None) -> None:
        self._by_id.pop(sid or "", None)


def _valid_id(value: str, longest: int = 300) -> bool:
    return 0 < len(value) <= longest and value[0].isalnum() and set(value) <= _ID_CHARS


def _html(text: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(text, status_code=status, headers=_HEADERS)


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})


async def _form(request: Request) -> dict[str, str]:
    """An urlencoded form body: each field's first value ("" when absent)."""
    raw = await request.body()
    if len(raw) > MAX_FORM_BYTES:
        return {}
    fields = parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=50)
    return {k: v[0] for k, v in fields.items()}


def _ago(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


def ui_router(
    settings: Settings,
    *,
    store: Store,
    manager: JobManager,
    engine: Engine,
    tokens: Sequence[bytes],
    job_events: Callable[[str, Request], Awaitable[Response]],
    review_action: Callable[[str, Any], Awaitable[Any]],
    review_model: Callable[..., Any],
    sessions: Sessions | None = None,
) -> APIRouter:
    """The /ui routes. `job_events` and `review_action` are the API's own SSE and review
    handlers (the dashboard goes through them, so both paths behave alike); `review_model`
    builds the action they take."""
    router = APIRouter(prefix="/ui", include_in_schema=False)
    live = sessions or Sessions()

    def session_of(request: Request) -> Session | None:
        return live.get(request.cookies.get(SESSION_COOKIE))

    def page(title: str, body: str, session: Session | None, status: int = 200) -> HTMLResponse:
        nav = ""
        if session is not None:
            nav = (
                '<header class="top"><nav aria-label="Main"><a class="brand" href="/ui/">courseforge</a>'
                '<a href="/ui/">Jobs</a><a href="/ui/reviews">Review queue</a><a href="/ui/evals">Evals</a>'
                '</nav><form method="post" action="/ui/logout" class="inline">'
                f'<input type="hidden" name="csrf" value="{esc(session.csrf)}">'
                '<button type="submit">Sign out</button></form></header>'
            )
        head = (
            '<link rel="stylesheet" href="/ui/static/views.css">'
            '<link rel="stylesheet" href="/ui/static/dashboard.css">'
            '<script src="/ui/static/app.js" defer></script>'
        )
        skip = '<a class="skip" href="#main">Skip to content</a>'
        return _html(
            document(f"{title} · courseforge", f'{skip}{nav}<main id="main">{body}</main>', head=head), status
        )

    def csrf_ok(session: Session, form: dict[str, str]) -> bool:
        return hmac.compare_digest(form.get("csrf", "").encode(), session.csrf.encode())

    def hidden(session: Session) -> str:
        return f'<input type="hidden" name="csrf" value="{esc(session.csrf)}">'

    def refused(request: Request) -> Response:
        if request.method == "GET" and "text/event-stream" not in request.headers.get("accept", ""):
            return _redirect("/ui/login")
        return JSONResponse({"error": {"message": "sign in first", "problems": []}}, status_code=401)

    # -- sign in / out ---------------------------------------------------------------------
    def login_page(nonce: str, problem: str = "", status: int = 200) -> HTMLResponse:
        alert = f'<p class="error" role="alert">{esc(problem)}</p>' if problem else ""
        body = (
            '<h1>Sign in</h1><form method="post" action="/ui/login" class="login">'
            f'{alert}<input type="hidden" name="csrf" value="{esc(nonce)}">'
            '<label for="token">API token</label>'
            '<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>'
            '<button type="submit">Sign in</button></form>'
            '<p class="hint">A token from the service\'s <code>$COURSEFORGE_API_TOKENS</code>. '
            "It is sent once in this form and never put in a URL.</p>"
        )
        response = page("Sign in", body, None, status)
        response.set_cookie(LOGIN_COOKIE, nonce, httponly=True, samesite="strict", path="/ui", max_age=3600)
        return response

    @router.get("/login")
    async def login_form(request: Request) -> Response:
        if session_of(request) is not None:
            return _redirect("/ui/")
        return login_page(secrets.token_urlsafe(24))

    @router.post("/login")
    async def login(request: Request) -> Response:
        form = await _form(request)
        nonce = request.cookies.get(LOGIN_COOKIE, "")
        if not nonce or not hmac.compare_digest(form.get("csrf", "").encode(), nonce.encode()):
            return login_page(secrets.token_urlsafe(24), "The form expired; sign in again.", 400)
        given = form.get("token", "").strip().encode()
        if not given or not any(hmac.compare_digest(given, t) for t in tokens):
            return login_page(secrets.token_urlsafe(24), "That token is not accepted.", 401)
        response = _redirect("/ui/")
        response.set_cookie(
            SESSION_COOKIE,
            live.open(),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/ui",
            max_age=int(live.ttl_s),
        )
        response.delete_cookie(LOGIN_COOKIE, path="/ui")
        return response

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        session = session_of(request)
        if session is not None and csrf_ok(session, await _form(request)):
            live.close(request.cookies.get(SESSION_COOKIE))
        response = _redirect("/ui/login")
        response.delete_cookie(SESSION_COOKIE, path="/ui")
        return response

    @router.get("/static/{name}")
    async def static(name: str) -> Response:
        if name not in _STATIC:
            return Response("not found", status_code=404, media_type="text/plain")
        package, path, media = _STATIC[name]
        body = resources.files(package).joinpath(path).read_bytes()
        return Response(
            body,
            media_type=media,
            headers={"Cache-Control": "max-age=300", "X-Content-Type-Options": "nosniff"},
        )

    # -- jobs --------------------------------------------------------------------------------
    def job_row(job: Job) -> str:
        active = not job.finished
        live_attr = f' data-live-job="{esc(job.id)}"' if active else ""
        return (
            f'<tr{live_attr}><th scope="row"><a href="/ui/jobs/{esc(job.id)}">{esc(job.id)}</a></th>'
            f'<td>{esc(job.course_id)}</td><td><span class="status s-{esc(job.status)}" data-status>{esc(job.status)}</span></td>'
            f"<td>{esc(job.course_status or '—')}</td><td data-message>{esc(job.progress.get('message', ''))}</td>"
            f"<td>{esc(_ago(job.updated_at))}</td></tr>"
        )

    def jobs_page(
        session: Session,
        jobs: list[Job],
        text: str = "",
        problems: Sequence[tuple[str, str]] = (),
        status: int = 200,
    ) -> HTMLResponse:
        errors = ""
        if problems:
            errors = (
                '<div class="error" role="alert"><p>The job was not submitted:</p><ul>'
                + "".join(f"<li><code>{esc(p)}</code>: {esc(r)}</li>" for p, r in problems)
                + "</ul></div>"
            )
        rows = "".join(job_row(j) for j in jobs) or '<tr><td colspan="6" class="empty">No jobs yet.</td></tr>'
        body = (
            "<h1>Jobs</h1>"
            '<div class="scroll"><table class="jobs"><caption>Latest jobs (live while they run)</caption><thead><tr>'
            '<th scope="col">job</th><th scope="col">course</th><th scope="col">status</th>'
            '<th scope="col">course status</th><th scope="col">progress</th><th scope="col">updated</th>'
            f"</tr></thead><tbody>{rows}</tbody></table></div>"
            '<h2 id="submit-h">Submit a course</h2>'
            f'<form method="post" action="/ui/jobs" aria-labelledby="submit-h">{hidden(session)}{errors}'
            '<label for="analysis">analysis_result JSON</label>'
            f'<textarea id="analysis" name="analysis" rows="10" required spellcheck="false">{esc(text)}</textarea>'
            '<button type="submit">Submit job</button></form>'
        )
        return page("Jobs", body, session, status)

    @router.get("/")
    async def jobs(request: Request) -> Response:
        session = session_of(request)
        if session is None:
            return refused(request)
        return jobs_page(session, await store.list_jobs(limit=50))

    @router.post("/jobs")
    async def submit(request: Request) -> Response:
        session = session_of(request)
        if session is None:
            return refused(request)
        form = await _form(request)
        if not csrf_ok(session, form):
            return page(
                "Refused",
                '<p class="error" role="alert">The form expired; reload the page.</p>',
                session,
                403,
            )
        text = form.get("analysis", "")
        try:
            analysis = parse_analysis(text.encode("utf-8"), max_bytes=settings.max_input_bytes)
        except UserError as exc:
            listed = await store.list_jobs(limit=50)
            return jobs_page(session, listed, text, exc.problems or [("analysis", exc.headline)], 422)
        job, _ = await manager.submit(analysis, f"job-{uuid.uuid4().hex[:16]}", None)
        return _redirect(f"/ui/jobs/{job.id}")

    async def known_job(request: Request, job_id: str) -> tuple[Session | None, Job | None, Response | None]:
        session = session_of(request)
        if session is None:
            return None, None, refused(request)
        job = await store.get_job(job_id) if _valid_id(job_id, 128) else None
        if job is None:
            return session, None, page("Not found", f"<h1>No such job</h1><p>{esc(job_id)}</p>", session, 404)
        return session, job, None

    @router.get("/jobs/{job_id}")
    async def job_page(request: Request, job_id: str) -> Response:
        session, job, refusal = await known_job(request, job_id)
        if refusal is not None or job is None or session is None:
            return refusal or refused(request)
        phases = job.progress.get("phases", {})
        rows = "".join(
            f'<tr data-phase="{esc(name)}"><th scope="row">{esc(name)}</th>'
            f"<td data-state>{esc(p.get('state', ''))}</td>"
            f'<td><progress max="{max(1, int(p.get("total") or 0))}" value="{_done(p)}" '
            f'aria-label="{esc(name)} progress"></progress> <span data-count>{_count(p)}</span></td></tr>'
            for name, p in phases.items()
        )
        report = await store.get_report(job.id)
        lessons = ""
        if report is not None:
            lessons = "".join(
                f"<li><strong>{esc(lg.get('lesson_id', ''))}</strong> {esc(lg.get('status', ''))} "
                f"({esc(lg.get('final_tier', ''))}, {int(lg.get('attempts', 0))} attempt(s))</li>"
                for lg in report.get("lessons", [])
            )
        links = []
        if await store.get_course(job.id) is not None:
            links.append(f'<a href="/ui/jobs/{esc(job.id)}/course">Course</a>')
        if report is not None:
            links.append(f'<a href="/ui/jobs/{esc(job.id)}/report">Report</a>')
        cancel = ""
        if not job.finished:
            cancel = (
                f'<form method="post" action="/ui/jobs/{esc(job.id)}/cancel" class="inline">{hidden(session)}'
                '<button type="submit">Cancel job</button></form>'
            )
        error = f'<p class="error" role="alert">{esc(job.error)}</p>' if job.error else ""
        live_attr = "" if job.finished else f' data-events="/ui/jobs/{esc(job.id)}/events"'
        body = (
            f'<h1>Job {esc(job.id)}</h1><div class="job"{live_attr}>'
            f"<p>Course <strong>{esc(job.course_id)}</strong> · status "
            f'<span class="status s-{esc(job.status)}" data-status role="status" aria-live="polite">{esc(job.status)}</span>'
            f" · course status <span data-course-status>{esc(job.course_status or '—')}</span> · runs {job.runs}</p>"
            f"{error}<p data-message>{esc(job.progress.get('message', ''))}</p>"
            f'<nav aria-label="This job" class="links" data-links>{" · ".join(links)}</nav>{cancel}'
            f'<h2>Phases</h2><table class="phases"><thead><tr><th scope="col">phase</th><th scope="col">state</th>'
            f'<th scope="col">progress</th></tr></thead><tbody>{rows}</tbody></table>'
            f'<h2>Lessons</h2><ol class="lessons" data-lessons aria-live="polite">{lessons}</ol></div>'
        )
        return page(f"Job {job.id}", body, session)

    @router.get("/jobs/{job_id}/events")
    async def events(request: Request, job_id: str) -> Response:
        if session_of(request) is None:
            return JSONResponse({"error": {"message": "sign in first", "problems": []}}, status_code=401)
        return await job_events(job_id, request)

    @router.post("/jobs/{job_id}/cancel")
    async def cancel(request: Request, job_id: str) -> Response:
        session, job, refusal = await known_job(request, job_id)
        if refusal is not None or job is None or session is None:
            return refusal or refused(request)
        if csrf_ok(session, await _form(request)) and not job.finished:
            await manager.cancel(job.id)
        return _redirect(f"/ui/jobs/{job.id}")

    async def stored_page(
        request: Request,
        job_id: str,
        what: str,
        load: Callable[[str], Awaitable[dict[str, Any] | None]],
        render: Callable[[Job, dict[str, Any]], tuple[str, str]],
    ) -> Response:
        """A page of a job's stored course or report (404 while the job has none)."""
        session, job, refusal = await known_job(request, job_id)
        if refusal is not None or job is None or session is None:
            return refusal or refused(request)
        data = await load(job.id)
        if data is None:
            body = f"<h1>No {what} yet</h1><p>The job is {esc(job.status)}.</p>"
            return page(f"No {what}", body, session, 404)
        title, body = render(job, data)
        back = f'<p><a href="/ui/jobs/{esc(job.id)}">← job {esc(job.id)}</a></p>'
        return page(title, back + body, session)

    def render_course(job: Job, data: dict[str, Any]) -> tuple[str, str]:
        titles = {s["id"]: s["title"] for s in job.analysis.get("source_material") or [] if "id" in s}
        return job.course_id, course_html(Course.model_validate(data), titles)

    def render_report(job: Job, data: dict[str, Any]) -> tuple[str, str]:
        body = f"<h1>Report: {esc(job.course_id)}</h1>{report_html(Report.model_validate(data))}"
        return f"Report {job.course_id}", body

    @router.get("/jobs/{job_id}/course")
    async def course_page(request: Request, job_id: str) -> Response:
        return await stored_page(request, job_id, "course", store.get_course, render_course)

    @router.get("/jobs/{job_id}/report")
    async def report_page(request: Request, job_id: str) -> Response:
        return await stored_page(request, job_id, "report", store.get_report, render_report)

    # -- review queue ------------------------------------------------------------------------
    @router.get("/reviews")
    async def reviews(request: Request) -> Response:
        session = session_of(request)
        if session is None:
            return refused(request)
        status = request.query_params.get("status", "open")
        if status not in ("open", "approved", "edited", "regenerating", "regenerated"):
            status = "open"
        items = await store.list_reviews(status=status, limit=200)
        courses: dict[str, dict[str, Any] | None] = {}
        cards = []
        for item in items:
            if item.job_id not in courses:
                courses[item.job_id] = await store.get_course(item.job_id)
            lesson = _lesson(courses[item.job_id], item.target)
            rid = esc(item.id)
            # One lesson can be flagged by several gates (several items): each control's name
            # says which item it acts on.
            what = esc(f"{item.target} ({item.gate})" if item.gate else item.target)
            actions = ""
            if status == "open":
                edit = regenerate = ""
                if lesson is not None:
                    edit = (
                        f'<details><summary>Edit the lesson</summary><form method="post" action="/ui/reviews/{quote(item.id)}">'
                        f'{hidden(session)}<input type="hidden" name="action" value="edit">'
                        f'<label for="content-{rid}">Lesson markdown of {what}</label>'
                        f'<textarea id="content-{rid}" name="content" rows="12">{esc(lesson.get("content", ""))}</textarea>'
                        '<button type="submit">Save the edit (re-gated)</button></form></details>'
                    )
                    regenerate = (
                        f'<form method="post" action="/ui/reviews/{quote(item.id)}" class="row">{hidden(session)}'
                        f'<input type="hidden" name="action" value="regenerate"><label for="note-{rid}">Feedback</label>'
                        f'<input id="note-{rid}" name="note" maxlength="2000" placeholder="what to change">'
                        f'<button type="submit" aria-label="Regenerate {what}">Regenerate</button></form>'
                    )
                actions = (
                    f'<form method="post" action="/ui/reviews/{quote(item.id)}" class="row">{hidden(session)}'
                    '<input type="hidden" name="action" value="approve">'
                    f'<button type="submit" aria-label="Approve {what}">Approve</button></form>{regenerate}{edit}'
                )
            resolution = ""
            if item.resolution:
                resolution = (
                    '<p class="meta">'
                    + esc(", ".join(f"{k}: {v}" for k, v in item.resolution.items() if k != "regated"))
                    + "</p>"
                )
            cards.append(
                f'<article class="review" id="review-{rid}" data-review="{rid}"><h2>{esc(item.target)} '
                f"<small>uncertainty {item.uncertainty:.2f}</small></h2>"
                f'<p class="meta">job <a href="/ui/jobs/{esc(item.job_id)}">{esc(item.job_id)}</a> · gate '
                f"{esc(item.gate or '—')} · {esc(item.status)}</p><p>{esc(item.reason)}</p>{resolution}{actions}</article>"
            )
        tabs = " · ".join(
            f'<a href="/ui/reviews?status={s}"'
            + (' aria-current="page"' if s == status else "")
            + f">{s}</a>"
            for s in ("open", "regenerating", "regenerated", "approved", "edited")
        )
        flash = request.query_params.get("done", "")
        note = f'<p class="flash" role="status">{esc(flash)}</p>' if flash else ""
        body = (
            f'<h1>Review queue</h1><nav aria-label="Review status" class="tabs">{tabs}</nav>{note}'
            '<p class="hint">Most uncertain first: the gates were least sure about these.</p>'
            + ("".join(cards) or '<p class="empty">Nothing here.</p>')
        )
        return page("Review queue", body, session)

    @router.post("/reviews/{review_id}")
    async def act(request: Request, review_id: str) -> Response:
        session = session_of(request)
        if session is None:
            return refused(request)
        form = await _form(request)
        if not csrf_ok(session, form) or not _valid_id(review_id):
            return page(
                "Refused",
                '<p class="error" role="alert">The form expired; reload the page.</p>',
                session,
                403,
            )
        try:
            # The UI saves an edit and re-gates it (`regate`: still flagged puts the item back in
            # the queue with the verdicts), so it keeps the edit past the API's gate refusal.
            note = form.get("note", "")
            edit = form.get("action") == "edit"
            action = review_model(
                action=form.get("action", ""),
                note=note or ("saved from the review page; re-gated after saving" if edit else ""),
                content=form.get("content") or None,
                approve_anyway=edit,
            )
            await review_action(review_id, action)
        except ValidationError as exc:
            problem = "; ".join(f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors())
            return _redirect(f"/ui/reviews?done={quote('refused: ' + problem)}")
        except Exception as exc:
            status = getattr(exc, "status", None)
            if status is None:
                raise
            message = "refused: " + str(getattr(exc, "message", ""))
            return _redirect(f"/ui/reviews?done={quote(message)}")
        done = f"{action.action}: {review_id}"
        if action.action == "edit":
            done = await regate(review_id)
        return _redirect(f"/ui/reviews?done={quote(done)}")

    async def regate(review_id: str) -> str:
        """The gates again on an edited lesson (`courseforge check`'s path, no model call):
        still flagged puts the item back in the queue, with the new reasons."""
        item = await store.get_review(review_id)
        job = await store.get_job(item.job_id) if item else None
        data = await store.get_course(item.job_id) if item else None
        if item is None or job is None or data is None:
            return f"edited: {review_id}"
        course = Course.model_validate(data)
        checked, flags = await check_course(
            course, validate_analysis(job.analysis), settings, engine.embedder()
        )
        gates = next((lg.gates for lg in checked.lessons if lg.lesson_id == item.target), [])
        mine = [f for f in flags if f.target == f"lesson:{item.target}"]
        resolution = {**item.resolution, "regated": [g.model_dump(mode="json") for g in gates]}
        if not mine:
            await store.update_review(review_id, status="edited", resolution=resolution)
            return f"edited and re-gated, every gate passed: {review_id}"
        failed = "; ".join(f"{f.gate}: {f.reason}" for f in mine)[:500]
        resolution["regate_failed"] = failed
        await store.update_review(review_id, status="open", resolution=resolution)
        if data.get("status") != "needs_review":
            data["status"] = "needs_review"
            await store.update_course(item.job_id, data, course_status="needs_review")
        return f"edited, but still flagged ({failed}); back in the queue: {review_id}"

    # -- evals -------------------------------------------------------------------------------
    @router.get("/evals")
    async def evals(request: Request) -> Response:
        session = session_of(request)
        if session is None:
            return refused(request)
        root = os.environ.get("COURSEFORGE_EVALS_DIR", "")
        runs = load_evals(Path(root)) if root else []
        where = (
            f'<p class="hint">From <code>{esc(root)}</code>.</p>'
            if root
            else '<p class="hint">Set <code>$COURSEFORGE_EVALS_DIR</code> to a directory of '
            "<code>courseforge eval</code> outputs.</p>"
        )
        return page("Evals", f"<h1>Eval results</h1>{where}{evals_html(runs)}", session)

    return router


def _done(phase: dict[str, Any]) -> int:
    """The bar's value: a finished phase without tasks shows full."""
    done = int(phase.get("done") or 0)
    return 1 if phase.get("state") == "done" and not phase.get("total") else done


def _count(phase: dict[str, Any]) -> str:
    total = int(phase.get("total") or 0)
    return f"{int(phase.get('done') or 0)}/{total}" if total else ""


def _lesson(course: dict[str, Any] | None, lesson_id: str) -> dict[str, Any] | None:
    """The lesson `lesson_id` of a stored course, as data (None: not a lesson of it)."""
    found = [x for x in Course.model_validate(course).lessons() if x.id == lesson_id] if course else []
    return found[0].model_dump(mode="json") if found else None
