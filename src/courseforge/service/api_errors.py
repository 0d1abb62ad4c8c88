"""How the HTTP API answers a refusal: `ApiError` (status, message, problems), the error body
`{"error": {"message", "problems": [{"path", "reason"}]}}`, the status of each domain error,
and the app's exception handlers (a store that stayed busy past a request's wait is answered 503
with Retry-After; anything unexpected is logged, type only, and answered 503)."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import ActionRefused, Conflict, NotFound, StaleVersion, UserError
from ..storage import StoreBusy

__all__ = [
    "ERRORS",
    "ApiError",
    "CatchUnexpected",
    "ErrorBody",
    "WatchedSend",
    "error_body",
    "from_domain",
    "install_error_handlers",
    "store_busy",
]

log = logging.getLogger("courseforge.service")

#: The HTTP status of each domain refusal (`errors.py`).
_STATUS: dict[type[UserError], int] = {NotFound: 404, Conflict: 409, StaleVersion: 412, ActionRefused: 422}


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        problems: Sequence[tuple[str, str]] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.status, self.message, self.problems = status, message, list(problems)
        self.headers = dict(headers or {})
        super().__init__(message)


class Problem(BaseModel):
    path: str
    reason: str


class ErrorDetail(BaseModel):
    message: str
    problems: list[Problem] = Field(default_factory=list)


class ErrorBody(BaseModel):
    error: ErrorDetail


#: Every /v1 operation's documented error answers.
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (400, 401, 402, 404, 409, 412, 413, 422, 429, 503)
}


def _text(value: str) -> str:
    """`value` as text any encoder can write: a lone surrogate a request smuggled in (JSON may
    escape one, UTF-8 cannot hold it) becomes its `\\udfff` escape instead of failing the answer."""
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


def error_body(message: str, problems: Sequence[tuple[str, str]] = ()) -> dict[str, Any]:
    listed = [{"path": _text(p), "reason": _text(r)} for p, r in problems]
    return {"error": {"message": _text(message), "problems": listed}}


class WatchedSend:
    """An ASGI `send` that remembers whether the answer has started: after its
    `http.response.start` no other answer can be sent, so a middleware that would answer an
    error instead asks `started` first."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.started = False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)


class CatchUnexpected:
    """ASGI middleware around the app: an exception nothing else handled is logged by its type
    alone (never its message or traceback, which may hold request data) and answered 503 when no
    answer has started; the connection stays open. An `Exception` handler cannot do this:
    Starlette's ServerErrorMiddleware re-raises after it, so the server logs the traceback and
    drops the keep-alive connection."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        watched = WatchedSend(send)
        try:
            await self.app(scope, receive, watched)
        except Exception as exc:
            log.error("unexpected %s on %s %s", type(exc).__name__, scope.get("method"), scope.get("path"))
            if not watched.started:
                answer = JSONResponse(error_body("temporarily unavailable"), status_code=503)
                await answer(scope, receive, send)


def from_domain(
    exc: NotFound | Conflict | StaleVersion | ActionRefused, where: Mapping[str, str]
) -> ApiError:
    """The answer to a domain refusal; `where` names each field's place in the request
    (`review_id` -> `path.review_id`); a field not in it is kept as it is (`gates.length`)."""
    status = next(code for cls, code in _STATUS.items() if isinstance(exc, cls))
    return ApiError(status, exc.headline, [(where.get(path, path), reason) for path, reason in exc.problems])


def store_busy(exc: StoreBusy) -> JSONResponse:
    """503 with `Retry-After`: the store stayed busy for as long as a request waits for it
    (`service.request_store_wait_s`); try again after that long (at most a minute)."""
    wait_s = min(60, max(1, math.ceil(exc.patience_s)))
    reason = f"the store did not answer within {exc.patience_s:g} s; try again in {wait_s} s"
    return JSONResponse(
        error_body("store busy", [("store", reason)]), status_code=503, headers={"Retry-After": str(wait_s)}
    )


def _methods_of(app: FastAPI, path: str) -> list[str]:
    """Every method some route of `app` serves at `path` (HEAD with GET, as Starlette does)."""
    methods: set[str] = set()
    for route in app.routes:
        regex, route_methods = getattr(route, "path_regex", None), getattr(route, "methods", None)
        if regex is not None and route_methods and regex.match(path):
            methods |= set(route_methods)
    return sorted(methods)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        headers = {**exc.headers, **({"WWW-Authenticate": "Bearer"} if exc.status == 401 else {})}
        return JSONResponse(
            error_body(exc.message, exc.problems), status_code=exc.status, headers=headers or None
        )

    @app.exception_handler(StoreBusy)
    async def _store_busy(request: Request, exc: StoreBusy) -> JSONResponse:
        return store_busy(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [(".".join(str(p) for p in e.get("loc", ())), str(e.get("msg", ""))) for e in exc.errors()]
        return JSONResponse(error_body("invalid request", problems), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and str(exc.detail).startswith("There was an error parsing the body"):
            # FastAPI's answer when its JSON parser raised something other than a syntax error
            # (RecursionError for a body nested 100,000 deep): the body is at fault, say so.
            problem = ("body", "cannot be parsed (nested too deeply, or not JSON)")
            return JSONResponse(error_body("invalid request", [problem]), status_code=422)
        headers = exc.headers
        if exc.status_code == 405:
            # Starlette's Allow names only the first route that matched the path; a path served
            # by several routes (GET and POST /v1/jobs) supports the methods of all of them.
            headers = {**(headers or {}), "Allow": ", ".join(_methods_of(app, request.url.path))}
        return JSONResponse(error_body(str(exc.detail)), status_code=exc.status_code, headers=headers)

    app.add_middleware(CatchUnexpected)  # added last: the outermost of ours
