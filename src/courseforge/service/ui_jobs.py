"""The dashboard's job pages: the jobs list with the submit form, a job's live progress (its
events are the API's own stream), cancelling it, its course and its report."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from ..domain import Course, Report
from ..errors import UserError
from ..storage import Job
from ..views import course_html, esc, report_html
from .api_jobs import event_stream, queue_full, visible_job
from .manager import QueueFull
from .ui_shell import Session, Ui, read_form, redirect, utc
from .ui_submit import bank_from_form, parse_submission, submit_form

__all__ = ["add_routes"]


def _spent(cost: tuple[float, float] | None) -> str:
    """A job's (cost, budget) as "spent of budget" ("—" before it has a report)."""
    if cost is None:
        return "—"
    return f"${cost[0]:.4f} of ${cost[1]:.2f}"


def _job_row(job: Job, cost: tuple[float, float] | None = None) -> str:
    active = not job.finished and job.status != "plan_review"  # waiting for its author: not live
    live_attr = f' data-live-job="{esc(job.id)}"' if active else ""
    return (
        f'<tr{live_attr}><th scope="row"><a href="/ui/jobs/{esc(job.id)}">{esc(job.id)}</a></th>'
        f'<td>{esc(job.course_id)}</td><td><span class="status s-{esc(job.status)}" data-status>{esc(job.status)}</span></td>'
        f"<td>{esc(job.course_status or '—')}</td><td>{esc(_spent(cost))}</td>"
        f"<td data-message>{esc(job.progress.get('message', ''))}</td>"
        f"<td>{esc(utc(job.updated_at))}</td></tr>"
    )


async def _jobs_page(
    ui: Ui,
    session: Session,
    form: dict[str, str] | None = None,
    problems: Sequence[tuple[str, str]] = (),
    status: int = 200,
    *,
    extra: str = "",
) -> HTMLResponse:
    jobs = await ui.store.list_jobs(limit=50)
    costs = await ui.store.report_costs([j.id for j in jobs if j.finished or j.status == "plan_review"])
    rows = "".join(_job_row(j, costs.get(j.id)) for j in jobs) or (
        '<tr><td colspan="7" class="empty">No jobs yet.</td></tr>'
    )
    body = (
        "<h1>Jobs</h1>"
        '<div class="scroll"><table class="jobs"><caption>Latest jobs (live while they run)</caption><thead><tr>'
        '<th scope="col">job</th><th scope="col">course</th><th scope="col">status</th>'
        '<th scope="col">course status</th><th scope="col">spent of budget</th><th scope="col">progress</th>'
        f'<th scope="col">updated</th></tr></thead><tbody>{rows}</tbody></table></div>'
        + submit_form(
            ui,
            session,
            form or {},
            problems,
            extra_row=extra == "add-section",
            extra_source=extra == "add-source",
        )
    )
    return ui.page("Jobs", body, session, status)


async def _job_body(ui: Ui, session: Session, job: Job) -> str:
    phases = job.progress.get("phases", {})
    rows = "".join(
        f'<tr data-phase="{esc(name)}"><th scope="row">{esc(name)}</th>'
        f"<td data-state>{esc(p.get('state', ''))}</td>"
        f'<td><progress max="{max(1, int(p.get("total") or 0))}" value="{_done(p)}" '
        f'aria-label="{esc(name)} progress"></progress> <span data-count>{_count(p)}</span></td></tr>'
        for name, p in phases.items()
    )
    report = await ui.store.get_report(job.id)
    lessons = ""
    if report is not None:
        lessons = "".join(
            f"<li><strong>{esc(lg.get('lesson_id', ''))}</strong> {esc(lg.get('status', ''))} "
            f"({esc(lg.get('final_tier', ''))}, {int(lg.get('attempts', 0))} attempt(s))</li>"
            for lg in report.get("lessons", [])
        )
    links = []
    if await ui.store.get_course(job.id) is not None:
        links.append(f'<a href="/ui/jobs/{esc(job.id)}/course">Course</a>')
    if report is not None:
        links.append(f'<a href="/ui/jobs/{esc(job.id)}/report">Report</a>')
    if isinstance(job.progress.get("plan"), dict):
        links.append(f'<a href="/ui/jobs/{esc(job.id)}/plan">Plan</a>')
    cancel = ""
    if not job.finished:
        cancel = (
            f'<form method="post" action="/ui/jobs/{esc(job.id)}/cancel" class="inline">{ui.hidden(session)}'
            '<button type="submit">Cancel job</button></form>'
        )
    error = f'<p class="error" role="alert">{esc(job.error)}</p>' if job.error else ""
    waiting = job.finished or job.status == "plan_review"  # a plan in review changes only by its author
    live_attr = "" if waiting else f' data-events="/ui/jobs/{esc(job.id)}/events"'
    return (
        f'<h1>Job {esc(job.id)}</h1><div class="job"{live_attr}>'
        f"<p>Course <strong>{esc(job.course_id)}</strong> · status "
        f'<span class="status s-{esc(job.status)}" data-status role="status" aria-live="polite">{esc(job.status)}</span>'
        f" · course status <span data-course-status>{esc(job.course_status or '—')}</span> · runs {job.runs}</p>"
        f"{error}<p data-message>{esc(job.progress.get('message', ''))}</p>"
        f"{_spend(job.progress, report)}"
        f'<nav aria-label="This job" class="links" data-links>{" · ".join(links)}</nav>{cancel}'
        f'<h2>Phases</h2><table class="phases"><thead><tr><th scope="col">phase</th><th scope="col">state</th>'
        f'<th scope="col">progress</th></tr></thead><tbody>{rows}</tbody></table>'
        f'<h2>Lessons</h2><ol class="lessons" data-lessons aria-live="polite">{lessons}</ol></div>'
    )


def _spend(progress: dict[str, Any], report: dict[str, Any] | None) -> str:
    """Spent against budget: the report's figures once the job has one, else the running job's
    latest progress event (the live page updates it as events arrive)."""
    spent, budget = progress.get("spent_usd"), progress.get("budget_usd")
    if report is not None:
        spent, budget = report.get("total_cost_usd", spent), report.get("budget_usd", budget)
    if spent is None or budget is None:
        return "<p data-spend hidden>spent <span data-spent></span> of <span data-budget></span></p>"
    used = float(spent) / float(budget) if float(budget) else 0.0
    return (
        f"<p data-spend>spent <span data-spent>${float(spent):.4f}</span> of "
        f"<span data-budget>${float(budget):.2f}</span> budget "
        f'<meter min="0" max="1" low="0.8" high="0.95" value="{used:.4f}" aria-label="share of the budget spent">'
        f"</meter> <span data-spent-share>{used:.0%}</span></p>"
    )


def _render_course(job: Job, data: dict[str, Any]) -> tuple[str, str]:
    titles = {s["id"]: s["title"] for s in job.analysis.get("source_material") or [] if "id" in s}
    return job.course_id, course_html(Course.model_validate(data), titles)


def _render_report(job: Job, data: dict[str, Any]) -> tuple[str, str]:
    body = f"<h1>Report: {esc(job.course_id)}</h1>{report_html(Report.model_validate(data))}"
    return f"Report {job.course_id}", body


async def _stored_page(
    ui: Ui,
    session: Session,
    job: Job,
    what: str,
    load: Callable[[str], Awaitable[dict[str, Any] | None]],
    render: Callable[[Job, dict[str, Any]], tuple[str, str]],
) -> Response:
    """A page of a job's stored course or report (404 while the job has none)."""
    data = await load(job.id)
    if data is None:
        body = f"<h1>No {what} yet</h1><p>The job is {esc(job.status)}.</p>"
        return ui.page(f"No {what}", body, session, 404)
    title, body = render(job, data)
    back = f'<p><a href="/ui/jobs/{esc(job.id)}">← job {esc(job.id)}</a></p>'
    return ui.page(title, back + body, session)


def add_routes(router: APIRouter, ui: Ui) -> None:
    @router.get("/")
    async def jobs(request: Request) -> Response:
        session = await ui.session_of(request)
        if session is None:
            return ui.refused(request)
        return await _jobs_page(ui, session)

    @router.post("/jobs")
    async def submit(request: Request) -> Response:
        session = await ui.session_of(request)
        if session is None:
            return ui.refused(request)
        form = await read_form(request, max_fields=400)
        if not ui.csrf_ok(session, form):
            return ui.expired_form(session)
        if form.get("action") in ("add-section", "add-source"):
            return await _jobs_page(ui, session, form, extra=form["action"])
        try:
            analysis = parse_submission(form, ui.settings.max_input_bytes)
            bank = bank_from_form(form)
        except UserError as exc:
            return await _jobs_page(ui, session, form, exc.problems or [("analysis", exc.headline)], 422)
        try:
            job, _ = await ui.manager.submit(analysis, f"job-{uuid.uuid4().hex[:16]}", None, bank=bank)
        except QueueFull as exc:
            refused = await _jobs_page(ui, session, form, queue_full(exc).problems, 503)
            refused.headers["Retry-After"] = str(exc.retry_after_s)
            return refused
        return redirect(f"/ui/jobs/{job.id}")

    @router.get("/jobs/{job_id}")
    @ui.job_route
    async def job_page(request: Request, session: Session, job: Job) -> Response:
        return ui.page(f"Job {job.id}", await _job_body(ui, session, job), session)

    @router.get("/jobs/{job_id}/events")
    async def events(request: Request, job_id: str) -> Response:
        if await ui.session_of(request) is None:
            return JSONResponse({"error": {"message": "sign in first", "problems": []}}, status_code=401)
        return event_stream(ui.store, ui.manager, await visible_job(ui.store, job_id), request)

    @router.post("/jobs/{job_id}/cancel")
    @ui.job_route
    async def cancel(request: Request, session: Session, job: Job) -> Response:
        if ui.csrf_ok(session, await read_form(request)) and not job.finished:
            await ui.manager.cancel(job.id)
        return redirect(f"/ui/jobs/{job.id}")

    @router.get("/jobs/{job_id}/course")
    @ui.job_route
    async def course_page(request: Request, session: Session, job: Job) -> Response:
        return await _stored_page(ui, session, job, "course", ui.store.get_course, _render_course)

    @router.get("/jobs/{job_id}/report")
    @ui.job_route
    async def report_page(request: Request, session: Session, job: Job) -> Response:
        return await _stored_page(ui, session, job, "report", ui.store.get_report, _render_report)


def _done(phase: dict[str, Any]) -> int:
    """The bar's value: a finished phase without tasks shows full."""
    done = int(phase.get("done") or 0)
    return 1 if phase.get("state") == "done" and not phase.get("total") else done


def _count(phase: dict[str, Any]) -> str:
    total = int(phase.get("total") or 0)
    return f"{int(phase.get('done') or 0)}/{total}" if total else ""
