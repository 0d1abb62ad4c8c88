"""The dashboard under /ui/: sign in with an API token, jobs with live status, a job's live
progress, the course, the report as pictures, the review queue, eval results.

Sign-in is a form POST of the token (never a token in a URL); it opens a server-side session
whose id travels only in an HttpOnly, SameSite=Strict cookie scoped to /ui. Every form carries
the session's CSRF token and every POST checks it. Pages are rendered on the server by
`courseforge.views` (the same code as `courseforge report --html`); the one script
(ui_static/app.js) only follows server-sent events. Every asset ships in the package: no CDN.

One module per page family, each with `add_routes(router, ui)` (`ui_shell.Ui`: the services,
the page shell, sessions and CSRF); `PAGES` is the list this router is built from. Sessions
live in the store: every service process on it knows them, a restart signs nobody out. `$COURSEFORGE_EVALS_DIR` names a
directory of `courseforge eval` output directories for the evals page.
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter

from ..config import Settings
from ..jobs.review_service import ReviewService
from ..storage import Store
from .manager import JobManager
from .ui_evals import add_routes as evals_pages
from .ui_jobs import add_routes as job_pages
from .ui_plans import add_routes as plan_pages
from .ui_reviews import add_routes as review_pages
from .ui_shell import SESSION_COOKIE, Sessions, Ui
from .ui_signin import add_routes as signin_pages

__all__ = ["PAGES", "SESSION_COOKIE", "Sessions", "ui_router"]

#: Every page family of the dashboard (a new page: its module's `add_routes` here, its link in
#: `ui_shell.NAV`).
PAGES = (signin_pages, job_pages, plan_pages, review_pages, evals_pages)


def ui_router(
    settings: Settings,
    *,
    store: Store,
    manager: JobManager,
    reviews: ReviewService,
    tokens: Sequence[bytes],
    sessions: Sessions | None = None,
) -> APIRouter:
    """The /ui routes, through the same services as the API (`reviews` for the review queue,
    `manager` for jobs); `tokens` may sign in."""
    router = APIRouter(prefix="/ui", include_in_schema=False)
    ui = Ui(settings, store, manager, reviews, tokens, sessions or Sessions(store))
    for add_routes in PAGES:
        add_routes(router, ui)
    return router
