"""The dashboard's review queue: the items of a status with approve / regenerate / edit
controls, and each action carried out by the one reviews service (`jobs.review_service`). An
edit from here is saved whatever its gates say and re-gated (`ReviewService.save_edit`): still
flagged, it goes back in the queue with the verdicts."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError

from ..errors import ActionRefused, Conflict, NotFound, StaleVersion
from ..jobs.review_service import RegateOutcome, ReviewAction
from ..storage import ReviewItem
from ..views import esc
from .ui_shell import Session, Ui, read_form, redirect, valid_id

__all__ = ["add_routes"]

_STATUSES = ("open", "approved", "edited", "regenerating", "regenerated")
_TABS = ("open", "regenerating", "regenerated", "approved", "edited")


def _controls(ui: Ui, session: Session, item: ReviewItem, content: str | None) -> str:
    """An open item's forms; edit and regenerate only when its target is a lesson."""
    rid = esc(item.id)
    # One lesson can be flagged by several gates (several items): each control's name says
    # which item it acts on.
    what = esc(f"{item.target} ({item.gate})" if item.gate else item.target)
    action = f"/ui/reviews/{quote(item.id)}"
    edit = regenerate = ""
    if content is not None:
        edit = (
            f'<details><summary>Edit the lesson</summary><form method="post" action="{action}">'
            f'{ui.hidden(session)}<input type="hidden" name="action" value="edit">'
            f'<label for="content-{rid}">Lesson markdown of {what}</label>'
            f'<textarea id="content-{rid}" name="content" rows="12">{esc(content)}</textarea>'
            '<button type="submit">Save the edit (re-gated)</button></form></details>'
        )
        regenerate = (
            f'<form method="post" action="{action}" class="row">{ui.hidden(session)}'
            f'<input type="hidden" name="action" value="regenerate"><label for="note-{rid}">Feedback</label>'
            f'<input id="note-{rid}" name="note" maxlength="2000" placeholder="what to change">'
            f'<label><input type="checkbox" name="best_quality" value="1"> needs the best quality</label>'
            f'<button type="submit" aria-label="Regenerate {what}">Regenerate</button></form>'
        )
    return (
        f'<form method="post" action="{action}" class="row">{ui.hidden(session)}'
        '<input type="hidden" name="action" value="approve">'
        f'<button type="submit" aria-label="Approve {what}">Approve</button></form>{regenerate}{edit}'
    )


def _card(item: ReviewItem, actions: str) -> str:
    rid = esc(item.id)
    resolution = ""
    if item.resolution:
        resolution = (
            '<p class="meta">'
            + esc(", ".join(f"{k}: {v}" for k, v in item.resolution.items() if k != "regated"))
            + "</p>"
        )
    return (
        f'<article class="review" id="review-{rid}" data-review="{rid}"><h2>{esc(item.target)} '
        f"<small>uncertainty {item.uncertainty:.2f}</small></h2>"
        f'<p class="meta">job <a href="/ui/jobs/{esc(item.job_id)}">{esc(item.job_id)}</a> · gate '
        f"{esc(item.gate or '—')} · {esc(item.status)}</p><p>{esc(item.reason)}</p>{resolution}{actions}</article>"
    )


def _edited(outcome: RegateOutcome) -> str:
    if not outcome.checked:
        return f"edited: {outcome.review_id}"
    if not outcome.failed:
        return f"edited and re-gated, every gate passed: {outcome.review_id}"
    return f"edited, but still flagged ({outcome.failed}); back in the queue: {outcome.review_id}"


def add_routes(router: APIRouter, ui: Ui) -> None:
    @router.get("/reviews")
    async def reviews(request: Request) -> Response:
        session = await ui.session_of(request)
        if session is None:
            return ui.refused(request)
        status = request.query_params.get("status", "open")
        if status not in _STATUSES:
            status = "open"
        cards = [
            _card(item, _controls(ui, session, item, content) if status == "open" else "")
            for item, content in await ui.reviews.queue(status, 200)
        ]
        tabs = " · ".join(
            f'<a href="/ui/reviews?status={s}"'
            + (' aria-current="page"' if s == status else "")
            + f">{s}</a>"
            for s in _TABS
        )
        flash = request.query_params.get("done", "")
        note = f'<p class="flash" role="status">{esc(flash)}</p>' if flash else ""
        body = (
            f'<h1>Review queue</h1><nav aria-label="Review status" class="tabs">{tabs}</nav>{note}'
            '<p class="hint">Most uncertain first: the gates were least sure about these.</p>'
            + ("".join(cards) or '<p class="empty">Nothing here.</p>')
        )
        return ui.page("Review queue", body, session)

    @router.post("/reviews/{review_id}")
    async def act(request: Request, review_id: str) -> Response:
        session = await ui.session_of(request)
        if session is None:
            return ui.refused(request)
        form = await read_form(request)
        if not ui.csrf_ok(session, form) or not valid_id(review_id):
            return ui.expired_form(session)
        kind, note, content = form.get("action", ""), form.get("note", ""), form.get("content") or None
        try:
            if kind == "edit":
                # Saved, then re-gated: still flagged puts the item back in the queue with the
                # verdicts, so the dashboard keeps the edit past the API's gate refusal.
                done = _edited(await ui.reviews.save_edit(review_id, content, note))
            else:
                action = ReviewAction.model_validate(
                    {
                        "action": kind,
                        "note": note,
                        "content": content,
                        "best_quality": kind == "regenerate" and form.get("best_quality") == "1",
                    }
                )
                await ui.reviews.act(review_id, action)
                done = f"{action.action}: {review_id}"
        except ValidationError as exc:
            problem = "; ".join(f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors())
            return redirect(f"/ui/reviews?done={quote('refused: ' + problem)}")
        except (NotFound, Conflict, StaleVersion, ActionRefused) as exc:
            return redirect(f"/ui/reviews?done={quote('refused: ' + exc.headline)}")
        return redirect(f"/ui/reviews?done={quote(done)}")
