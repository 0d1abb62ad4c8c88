"""The dashboard's eval results page: `$COURSEFORGE_EVALS_DIR` names a directory of
`courseforge eval` output directories."""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..views import esc, evals_html, load_evals
from .ui_shell import Ui

__all__ = ["add_routes"]


def add_routes(router: APIRouter, ui: Ui) -> None:
    @router.get("/evals")
    async def evals(request: Request) -> Response:
        session = await ui.session_of(request)
        if session is None:
            return ui.refused(request)
        root = os.environ.get("COURSEFORGE_EVALS_DIR", "")
        runs = load_evals(Path(root)) if root else []
        where = (
            f'<p class="hint">From <code>{esc(root)}</code>.</p>'
            if root
            else '<p class="hint">Set <code>$COURSEFORGE_EVALS_DIR</code> to a directory of '
            "<code>courseforge eval</code> outputs.</p>"
        )
        return ui.page("Evals", f"<h1>Eval results</h1>{where}{evals_html(runs)}", session)
