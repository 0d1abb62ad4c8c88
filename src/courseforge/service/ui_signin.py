"""Dashboard sign-in and sign-out, and its static assets. Sign-in is a form POST of the token
(never a token in a URL), guarded by a one-time nonce cookie."""

from __future__ import annotations

import hmac
import secrets
from importlib import resources

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from ..views import esc
from .ui_shell import LOGIN_COOKIE, SESSION_COOKIE, Ui, read_form, redirect

__all__ = ["add_routes"]

_STATIC = {
    "views.css": ("courseforge.views", "views.css", "text/css; charset=utf-8"),
    "dashboard.css": ("courseforge.service", "ui_static/dashboard.css", "text/css; charset=utf-8"),
    "app.js": ("courseforge.service", "ui_static/app.js", "text/javascript; charset=utf-8"),
}


def _login_page(ui: Ui, nonce: str, problem: str = "", status: int = 200) -> HTMLResponse:
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
    response = ui.page("Sign in", body, None, status)
    response.set_cookie(LOGIN_COOKIE, nonce, httponly=True, samesite="strict", path="/ui", max_age=3600)
    return response


def add_routes(router: APIRouter, ui: Ui) -> None:
    @router.get("/login")
    async def login_form(request: Request) -> Response:
        if await ui.session_of(request) is not None:
            return redirect("/ui/")
        return _login_page(ui, secrets.token_urlsafe(24))

    @router.post("/login")
    async def login(request: Request) -> Response:
        form = await read_form(request)
        nonce = request.cookies.get(LOGIN_COOKIE, "")
        if not nonce or not hmac.compare_digest(form.get("csrf", "").encode(), nonce.encode()):
            return _login_page(ui, secrets.token_urlsafe(24), "The form expired; sign in again.", 400)
        given = form.get("token", "").strip().encode()
        if not given or not any(hmac.compare_digest(given, t) for t in ui.tokens):
            return _login_page(ui, secrets.token_urlsafe(24), "That token is not accepted.", 401)
        response = redirect("/ui/")
        response.set_cookie(
            SESSION_COOKIE,
            await ui.sessions.open(),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/ui",
            max_age=int(ui.sessions.ttl_s),
        )
        response.delete_cookie(LOGIN_COOKIE, path="/ui")
        return response

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        # Whatever the form holds: a sign-out that kept the server's session (because its CSRF
        # token was missing or stale) left a copied cookie valid for hours. Ending a session
        # needs no proof beyond the cookie; the worst a forged POST can do is sign someone out.
        await ui.sessions.close(request.cookies.get(SESSION_COOKIE))
        response = redirect("/ui/login")
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
