"""The dashboard's plan page: the plan a job stopped at (`review_plan`) as an editable form —
the title and description, each outcome's text and Bloom level, each lesson's title, outcomes,
order, removal, a new lesson per section — with the estimates beside it; saving gates the edit
(`jobs.plans.edit_plan`: refused, the reasons are shown and the form keeps what was typed),
approving resumes the job. No script needed."""

from __future__ import annotations

from typing import Any, get_args

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError

from ..domain import BloomLevel, CoursePlan
from ..errors import UserError
from ..jobs import approve_plan, edit_plan, job_plan
from ..storage import Job
from ..views import esc
from .ui_shell import Session, Ui, labelled_input, read_form, redirect

__all__ = ["add_routes", "plan_from_form"]

_LEVELS: tuple[str, ...] = get_args(BloomLevel)


def plan_from_form(current: CoursePlan, form: dict[str, str]) -> dict[str, Any]:
    """The plan the form describes (validated later): `title`, `description`; `o<i>-text`,
    `o<i>-bloom`; per lesson `<section>-<j>-title|outcomes|order|remove`; per section a new
    lesson `<section>-new-title|outcomes`. Lessons are ordered by their `order` number."""
    data = current.model_dump(mode="json")
    data.pop("problems", None)
    data["course_title"] = form.get("title", current.course_title).strip()
    data["description"] = form.get("description", current.description).strip()
    for i, outcome in enumerate(data["outcomes"]):
        outcome["text"] = form.get(f"o{i}-text", outcome["text"]).strip()
        outcome["bloom_level"] = form.get(f"o{i}-bloom", outcome["bloom_level"])
    for section in data["sections"]:
        sid = section["id"]
        kept = []
        for j, lesson in enumerate(section["lessons"]):
            if form.get(f"{sid}-{j}-remove"):
                continue
            lesson["title"] = form.get(f"{sid}-{j}-title", lesson["title"]).strip()
            lesson["outcomes"] = _ids(form.get(f"{sid}-{j}-outcomes", ", ".join(lesson["outcomes"])))
            kept.append((_order(form.get(f"{sid}-{j}-order"), j + 1), j, lesson))
        new_title = form.get(f"{sid}-new-title", "").strip()
        if new_title:
            new = {"title": new_title, "outcomes": _ids(form.get(f"{sid}-new-outcomes", ""))}
            kept.append((_order(form.get(f"{sid}-new-order"), len(kept) + 1), len(kept), new))
        section["lessons"] = [lesson for _, _, lesson in sorted(kept, key=lambda k: (k[0], k[1]))]
    return data


def _ids(text: str) -> list[str]:
    return [part.strip() for part in text.replace(";", ",").split(",") if part.strip()]


def _order(text: str | None, default: int) -> float:
    try:
        return float(text) if text else float(default)
    except ValueError:
        return float(default)


def _field(name: str, label: str, value: str, errors: dict[str, str], *, size: int = 60) -> str:
    return labelled_input(name, label, value, errors, label_class="sr-only", size=str(size))


def _plan_form(
    ui: Ui, session: Session, job: Job, plan: CoursePlan, state: str, errors: dict[str, str]
) -> str:
    editable = job.status == "plan_review"
    outcomes = "".join(
        f'<tr><th scope="row">{esc(o.id or f"new {i + 1}")}</th>'
        f"<td>{_field(f'o{i}-text', f'outcome {o.id} text', o.text, errors, size=70)}</td>"
        f'<td><label for="o{i}-bloom" class="sr-only">outcome {esc(o.id)} Bloom level</label>'
        f'<select id="o{i}-bloom" name="o{i}-bloom">'
        + "".join(f"<option{' selected' if lv == o.bloom_level else ''}>{lv}</option>" for lv in _LEVELS)
        + "</select></td></tr>"
        for i, o in enumerate(plan.outcomes)
    )
    sections = []
    for section in plan.sections:
        sid = section.id
        rows = "".join(
            f'<tr><th scope="row">{esc(lp.id)}</th>'
            f'<td><label for="{sid}-{j}-order" class="sr-only">{esc(lp.id)} order</label>'
            f'<input id="{sid}-{j}-order" name="{sid}-{j}-order" type="number" value="{j + 1}" min="1" max="20"></td>'
            f"<td>{_field(f'{sid}-{j}-title', f'{lp.id} title', lp.title, errors, size=50)}</td>"
            f"<td>{_field(f'{sid}-{j}-outcomes', f'{lp.id} outcomes', ', '.join(lp.outcomes), errors, size=12)}</td>"
            f"<td>{esc(lp.start_tier)}</td><td>{lp.estimated_cost_usd:.6f}</td>"
            f'<td><input type="checkbox" id="{sid}-{j}-remove" name="{sid}-{j}-remove" value="1">'
            f'<label for="{sid}-{j}-remove">remove</label></td></tr>'
            for j, lp in enumerate(section.lessons)
        )
        rows += (
            f'<tr class="new"><th scope="row">new</th><td><label for="{sid}-new-order" class="sr-only">new lesson order</label>'
            f'<input id="{sid}-new-order" name="{sid}-new-order" type="number" value="{len(section.lessons) + 1}" min="1" max="20"></td>'
            f"<td>{_field(f'{sid}-new-title', f'new lesson title in {sid}', '', errors, size=50)}</td>"
            f"<td>{_field(f'{sid}-new-outcomes', f'new lesson outcomes in {sid}', '', errors, size=12)}</td>"
            "<td></td><td></td><td></td></tr>"
        )
        sections.append(
            f'<h3>{esc(sid)}: {esc(section.title)}</h3><div class="scroll"><table class="plan-lessons">'
            '<thead><tr><th scope="col">lesson</th><th scope="col">order</th><th scope="col">title</th>'
            '<th scope="col">outcomes</th><th scope="col">start tier</th><th scope="col">est. USD</th>'
            f'<th scope="col">remove</th></tr></thead><tbody>{rows}</tbody></table></div>'
        )
    problems = ""
    if plan.problems or errors.get("plan"):
        listed = [*plan.problems, *([errors["plan"]] if errors.get("plan") else [])]
        problems = (
            '<div class="error" role="alert"><p>The plan was not saved: the gates refused it.</p><ul>'
            + "".join(f"<li>{esc(p)}</li>" for p in listed)
            + "</ul></div>"
        )
    buttons = (
        '<p><button type="submit" name="action" value="save">Save plan</button> '
        '<button type="submit" name="action" value="approve">Approve and generate</button></p>'
        if editable
        else f"<p>The plan is {esc(state)}; the job is {esc(job.status)}.</p>"
    )
    return (
        f'<h1>Plan of {esc(job.id)}</h1><p><a href="/ui/jobs/{esc(job.id)}">← job {esc(job.id)}</a> · '
        f"state <strong>{esc(state)}</strong> · projected lessons ${plan.projected_lessons_usd:.6f} + spent "
        f"${plan.spent_usd:.6f} of budget ${plan.budget_usd:.2f}</p>{problems}"
        f'<form method="post" action="/ui/jobs/{esc(job.id)}/plan" class="plan">{ui.hidden(session)}'
        f'<p><label for="title">Course title</label> {_field("title", "Course title", plan.course_title, errors)}</p>'
        f'<p><label for="description">Description</label> '
        f"{_field('description', 'Description', plan.description, errors, size=90)}</p>"
        '<h2>Outcomes</h2><table class="plan-outcomes"><thead><tr><th scope="col">outcome</th>'
        f'<th scope="col">text</th><th scope="col">Bloom level</th></tr></thead><tbody>{outcomes}</tbody></table>'
        f"<h2>Lessons</h2>{''.join(sections)}{buttons}</form>"
    )


def _field_errors(exc: ValidationError, data: dict[str, Any]) -> dict[str, str]:
    """Pydantic's problems keyed by the form field they name (`plan` when none does)."""
    out: dict[str, str] = {}
    for e in exc.errors():
        loc = [str(p) for p in e["loc"]]
        name = "plan"
        if loc[:1] == ["course_title"]:
            name = "title"
        elif loc[:1] == ["description"]:
            name = "description"
        elif loc[:1] == ["outcomes"] and len(loc) > 2:
            name = f"o{loc[1]}-{'text' if loc[2] == 'text' else 'bloom'}"
        elif loc[:1] == ["sections"] and len(loc) > 4:
            sid = data["sections"][int(loc[1])]["id"]
            name = f"{sid}-{loc[3]}-{'title' if loc[4] == 'title' else 'outcomes'}"
        out.setdefault(name, e["msg"])
    return out


def _no_plan(ui: Ui, session: Session, exc: UserError) -> Response:
    return ui.page("No plan", f"<h1>No plan</h1><p>{esc(exc.problems[0][1])}</p>", session, 404)


def add_routes(router: APIRouter, ui: Ui) -> None:
    @router.get("/jobs/{job_id}/plan")
    @ui.job_route
    async def plan_page(request: Request, session: Session, job: Job) -> Response:
        try:
            _job, plan, state = await job_plan(ui.store, job.id)
        except UserError as exc:
            return _no_plan(ui, session, exc)
        return ui.page(f"Plan {job.id}", _plan_form(ui, session, job, plan, state, {}), session)

    @router.post("/jobs/{job_id}/plan")
    @ui.job_route
    async def plan_post(request: Request, session: Session, job: Job) -> Response:
        form = await read_form(request, max_fields=600)
        if not ui.csrf_ok(session, form):
            return ui.expired_form(session)
        try:
            _job, current, state = await job_plan(ui.store, job.id)
        except UserError as exc:
            return _no_plan(ui, session, exc)
        data = plan_from_form(current, form)
        try:
            edited = CoursePlan.model_validate(data)
        except ValidationError as exc:
            shown = CoursePlan.model_construct(**{**current.model_dump(), **_shown(data)})
            body = _plan_form(ui, session, job, shown, state, _field_errors(exc, data))
            return ui.page(f"Plan {job.id}", body, session, 422)
        try:
            await edit_plan(ui.store, ui.settings, job.id, edited, ui.manager.engine.embedder().embed)
        except UserError as exc:
            shown = edited.model_copy(update={"problems": [r for _, r in exc.problems] or [exc.headline]})
            return ui.page(f"Plan {job.id}", _plan_form(ui, session, job, shown, state, {}), session, 422)
        if form.get("action") == "approve":
            await approve_plan(ui.store, job.id)
            await ui.manager.resume(job.id)
            return redirect(f"/ui/jobs/{job.id}")
        return redirect(f"/ui/jobs/{job.id}/plan")


def _shown(data: dict[str, Any]) -> dict[str, Any]:
    """What the author typed, redisplayed as it was (even where invalid)."""
    from ..domain import PlanLesson, PlanOutcome, PlanSection

    return {
        "course_title": data["course_title"],
        "description": data["description"],
        "outcomes": [PlanOutcome.model_construct(**o) for o in data["outcomes"]],
        "sections": [
            PlanSection.model_construct(
                **{**s, "lessons": [PlanLesson.model_construct(**lp) for lp in s["lessons"]]}
            )
            for s in data["sections"]
        ],
    }
