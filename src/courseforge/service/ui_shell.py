"""What every dashboard page shares: sessions, the page shell (navigation, sign-out, assets),
CSRF checks, the refusal of a request without a session, forms, and the job a page is about.

Sessions live in the store, so every service process on it knows them. Sign-in opens a
server-side session whose id travels only in an HttpOnly, SameSite=Strict cookie scoped to /ui;
every form carries the session's CSRF token and every POST checks it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qs

from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from ..config import Settings
from ..jobs.review_service import ReviewService
from ..storage import Job, Store
from ..views import document, esc
from .manager import JobManager

__all__ = [
    "LOGIN_COOKIE",
    "SESSION_COOKIE",
    "Session",
    "Sessions",
    "Ui",
    "html_response",
    "labelled_input",
    "read_form",
    "redirect",
    "utc",
    "valid_id",
]

SESSION_COOKIE = "cf_session"
LOGIN_COOKIE = "cf_login"
SESSION_TTL_S = 8 * 3600
MAX_FORM_BYTES = 2_000_000
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
#: The navigation bar's pages (a new page adds its link here).
NAV = (("/ui/", "Jobs"), ("/ui/reviews", "Review queue"), ("/ui/evals", "Evals"))


@dataclass(slots=True)
class Session:
    csrf: str
    expires: float


@dataclass(slots=True)
class Sessions:
    """Signed-in browsers: session id -> its CSRF token and expiry, kept in the store under a
    digest of the id (never the id itself), so every service process on the store knows them
    and a restart signs nobody out."""

    store: Store
    ttl_s: float = SESSION_TTL_S

    async def open(self) -> str:
        now = time.time()
        sid = secrets.token_urlsafe(32)
        await self.store.put_session(
            _digest(sid), secrets.token_urlsafe(32), expires_at=now + self.ttl_s, now=now
        )
        return sid

    async def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        found = await self.store.get_session(_digest(sid), now=time.time())
        return Session(csrf=found[0], expires=found[1]) if found else None

    async def close(self, sid: str | None) -> None:
        if sid:
            await self.store.delete_session(_digest(sid))


def _digest(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


def valid_id(value: str, longest: int = 300) -> bool:
    return 0 < len(value) <= longest and value[0].isalnum() and set(value) <= _ID_CHARS


def labelled_input(
    name: str, label: str, value: str, errors: dict[str, str], *, label_class: str = "", **attrs: str
) -> str:
    """A text input and its label; with an error for `name`, the error beside it, tied to the
    input by `aria-describedby` and the input marked invalid. `attrs`: more attributes
    (`size="50"`, `data_x="y"` as `data-x`)."""
    error = errors.get(name, "")
    extra = "".join(f' {k.replace("_", "-")}="{esc(v)}"' for k, v in attrs.items())
    invalid = f' aria-invalid="true" aria-describedby="{name}-err"' if error else ""
    note = f'<span class="field-error" id="{name}-err">{esc(error)}</span>' if error else ""
    shown = f' class="{label_class}"' if label_class else ""
    return (
        f'<label for="{name}"{shown}>{esc(label)}</label> '
        f'<input id="{name}" name="{name}" value="{esc(value)}"{extra}{invalid}>{note}'
    )


def html_response(text: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(text, status_code=status, headers=_HEADERS)


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})


async def read_form(request: Request, *, max_fields: int = 50) -> dict[str, str]:
    """An urlencoded form body: each field's first value ("" when absent); a body over
    `MAX_FORM_BYTES` or with more than `max_fields` fields reads as empty."""
    raw = await request.body()
    if len(raw) > MAX_FORM_BYTES:
        return {}
    try:
        fields = parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=max_fields)
    except ValueError:  # more fields than allowed
        return {}
    return {k: v[0] for k, v in fields.items()}


def utc(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


@dataclass(slots=True)
class Ui:
    """The dashboard's services and page shell, handed to each page module's `add_routes`."""

    settings: Settings
    store: Store
    manager: JobManager
    reviews: ReviewService
    tokens: Sequence[bytes]
    sessions: Sessions

    async def session_of(self, request: Request) -> Session | None:
        return await self.sessions.get(request.cookies.get(SESSION_COOKIE))

    def page(self, title: str, body: str, session: Session | None, status: int = 200) -> HTMLResponse:
        nav = ""
        if session is not None:
            links = "".join(f'<a href="{href}">{name}</a>' for href, name in NAV)
            nav = (
                f'<header class="top"><nav aria-label="Main"><a class="brand" href="/ui/">courseforge</a>{links}'
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
        return html_response(
            document(f"{title} · courseforge", f'{skip}{nav}<main id="main">{body}</main>', head=head), status
        )

    def expired_form(self, session: Session) -> HTMLResponse:
        return self.page(
            "Refused", '<p class="error" role="alert">The form expired; reload the page.</p>', session, 403
        )

    @staticmethod
    def csrf_ok(session: Session, form: dict[str, str]) -> bool:
        return hmac.compare_digest(form.get("csrf", "").encode(), session.csrf.encode())

    @staticmethod
    def hidden(session: Session) -> str:
        return f'<input type="hidden" name="csrf" value="{esc(session.csrf)}">'

    @staticmethod
    def refused(request: Request) -> Response:
        """A request without a session: pages go to the sign-in form, the rest get 401."""
        if request.method == "GET" and "text/event-stream" not in request.headers.get("accept", ""):
            return redirect("/ui/login")
        return JSONResponse({"error": {"message": "sign in first", "problems": []}}, status_code=401)

    async def known_job(self, request: Request, job_id: str) -> tuple[Session, Job] | Response:
        """The session and the job a page is about, or the answer refusing it (no session: the
        sign-in; no such job: a 404 page)."""
        session = await self.session_of(request)
        if session is None:
            return self.refused(request)
        job = await self.store.get_job(job_id) if valid_id(job_id, 128) else None
        if job is None:
            return self.page("Not found", f"<h1>No such job</h1><p>{esc(job_id)}</p>", session, 404)
        return session, job

    def job_route(
        self, handler: Callable[[Request, Session, Job], Awaitable[Response]]
    ) -> Callable[[Request, str], Awaitable[Response]]:
        """The route of a page about one job (`job_id` in its path): `handler(request, session,
        job)` runs once `known_job` has found both, else the refusal is the answer."""

        async def route(request: Request, job_id: str) -> Response:
            known = await self.known_job(request, job_id)
            if isinstance(known, Response):
                return known
            session, job = known
            return await handler(request, session, job)

        route.__name__ = route.__qualname__ = handler.__name__
        return route
