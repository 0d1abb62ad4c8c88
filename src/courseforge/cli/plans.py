"""`courseforge plan show|edit|approve JOB`: the plan a `generate --review-plan` job stopped at
(docs/authoring.md). `edit` takes the plan as JSON or YAML (`plan show JOB --json` writes it),
and small changes as options; a refused edit exits 2 with the gates' reasons, nothing kept.
With `--temporal HOST:PORT` the job is a workflow waiting for its plan: the `plan` query shows
it, an edit (gated here) and the approval are signals (`distributed.client`)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
import yaml
from pydantic import ValidationError
from rich.table import Table

from ..config import Settings, load_config
from ..domain import CoursePlan
from ..errors import UserError
from ..files import MAX_SMALL_FILE_BYTES
from ..storage import Store, masked_url, open_store, storage_url
from ._common import ConfigOpt, app, err, fail_user, read_limited

__all__ = ["plan_app", "plan_tables"]

plan_app = typer.Typer(no_args_is_help=True, help="Review the plan of a job stopped by --review-plan.")
app.add_typer(plan_app, name="plan")

T = TypeVar("T")
JobArg = Annotated[str, typer.Argument(help="the job id (`generate` prints it)")]


TemporalOpt = Annotated[
    str | None,
    typer.Option(
        "--temporal",
        help="The job is a workflow on this Temporal frontend (HOST:PORT), started by "
        "`generate --temporal --review-plan`.",
    ),
]


def _with_temporal(settings: Settings, address: str, work: Callable[[Any], Awaitable[T]]) -> T:
    """`work(client)` on a Temporal client (the `service` extra)."""
    from ..distributed.worker import connect

    async def run() -> T:
        return await work(await connect(address, settings.service.temporal_namespace))

    return asyncio.run(run())


def _with_store(settings: Settings, work: Callable[[Store], Awaitable[T]]) -> T:
    async def run() -> T:
        url = storage_url(settings.storage.url)
        store = open_store(url)
        err.print(f"store: {masked_url(url)}")
        await store.init()
        try:
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(run())


def plan_tables(plan: CoursePlan, state: str = "review") -> list[Table]:
    """The plan as two terminal tables: outcomes; lessons with their start tier and estimate."""
    outcomes = Table(title=f"{plan.course_title} ({state})", caption=plan.description[:160])
    for col in ("outcome", "bloom", "text"):
        outcomes.add_column(col)
    for o in plan.outcomes:
        outcomes.add_row(o.id, o.bloom_level, o.text)
    lessons = Table(
        title="lessons",
        caption=(
            f"projected lessons ${plan.projected_lessons_usd:.6f} + spent ${plan.spent_usd:.6f} "
            f"of budget ${plan.budget_usd:.2f} (first attempts; see docs/authoring.md)"
        ),
    )
    for col in ("lesson", "title", "outcomes", "start tier", "est. USD"):
        lessons.add_column(col, justify="right" if col == "est. USD" else "left")
    for section in plan.sections:
        for lesson in section.lessons:
            lessons.add_row(
                lesson.id,
                lesson.title,
                ", ".join(lesson.outcomes),
                lesson.start_tier,
                f"{lesson.estimated_cost_usd:.6f}",
            )
    return [outcomes, lessons]


@plan_app.command("show")
def show(
    job: JobArg,
    as_json: Annotated[
        bool, typer.Option("--json", help="print the plan as JSON (to edit and pass to `plan edit --file`)")
    ] = False,
    config: ConfigOpt = None,
    temporal: TemporalOpt = None,
) -> None:
    """The job's plan: outcomes, lessons (outcome mapping, start tier, estimated cost), the
    projected cost against the budget."""
    from ..jobs import job_plan

    try:
        settings = load_config(config).settings
        if temporal:
            from ..distributed.client import workflow_plan

            record, _a, _c = _with_temporal(settings, temporal, lambda client: workflow_plan(client, job))
            plan, state = CoursePlan.model_validate(record["plan"]), str(record.get("state", "review"))
        else:
            _job, plan, state = _with_store(settings, lambda store: job_plan(store, job))
    except UserError as exc:
        raise fail_user(exc) from exc
    if as_json:
        typer.echo(plan.model_dump_json(indent=2))
        return
    for table in plan_tables(plan, state):
        err.print(table)
    for problem in plan.problems:
        err.print(f"[red]refused:[/red] {problem}")


def _pairs(values: list[str], option: str) -> list[tuple[str, str]]:
    out = []
    for value in values:
        key, sep, text = value.partition("=")
        if not sep or not key.strip():
            raise UserError("bad option", [(option, f"{value!r}: expected ID=TEXT")])
        out.append((key.strip(), text.strip()))
    return out


def _edited(
    current: CoursePlan, file: Path | None, outcome: list[str], title: list[str], remove: list[str]
) -> CoursePlan:
    data: dict[str, Any] = current.model_dump(mode="json")
    if file is not None:
        raw = read_limited(file, MAX_SMALL_FILE_BYTES, what="plan")
        try:
            loaded = yaml.safe_load(raw.decode("utf-8"))  # JSON is YAML
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise UserError("plan is not JSON or YAML", [(str(file), str(exc)[:200])]) from exc
        if not isinstance(loaded, dict):
            raise UserError(
                "plan is not an object", [(str(file), "expected the object `plan show --json` prints")]
            )
        data = loaded
    outcomes = {o["id"]: o for o in data.get("outcomes", []) if isinstance(o, dict)}
    lessons = {
        lp["id"]: (s, lp)
        for s in data.get("sections", [])
        if isinstance(s, dict)
        for lp in s.get("lessons", [])
        if isinstance(lp, dict) and "id" in lp
    }
    for key, text in _pairs(outcome, "--outcome"):
        if key not in outcomes:
            raise UserError(
                "unknown outcome", [("--outcome", f"{key!r}: the plan has {', '.join(outcomes)}")]
            )
        outcomes[key]["text"] = text
    for key, text in _pairs(title, "--title"):
        if key not in lessons:
            raise UserError("unknown lesson", [("--title", f"{key!r} is not a lesson of the plan")])
        lessons[key][1]["title"] = text
    for key in remove:
        if key not in lessons:
            raise UserError("unknown lesson", [("--remove", f"{key!r} is not a lesson of the plan")])
        section, lesson = lessons[key]
        section["lessons"].remove(lesson)
    try:
        return CoursePlan.model_validate(data)
    except ValidationError as exc:
        problems = [(".".join(str(p) for p in e["loc"]) or "$", e["msg"]) for e in exc.errors()]
        raise UserError("invalid plan", problems) from exc


@plan_app.command("edit")
def edit(
    job: JobArg,
    file: Annotated[
        Path | None,
        typer.Option("--file", "-f", help="the whole plan, JSON or YAML (from `plan show --json`)"),
    ] = None,
    outcome: Annotated[
        list[str], typer.Option("--outcome", help="ID=TEXT: an outcome's new text (repeatable)")
    ] = [],  # noqa: B006
    title: Annotated[
        list[str], typer.Option("--title", help="LESSON=TEXT: a lesson's new title (repeatable)")
    ] = [],  # noqa: B006
    remove: Annotated[list[str], typer.Option("--remove", help="LESSON: remove a lesson (repeatable)")] = [],  # noqa: B006
    config: ConfigOpt = None,
    temporal: TemporalOpt = None,
) -> None:
    """Change the plan (outcomes, titles, order, lessons added or removed). The edit is gated
    like phase 2's plan before it is kept; refused, it exits 2 with the reasons."""
    from ..jobs import edit_plan, job_plan
    from ..providers.embeddings import make_embedder

    try:
        settings = load_config(config).settings
        embedder = make_embedder(
            settings.gates.embedding_model, batch_size=settings.gates.embedding_batch_size
        )

        async def work(store: Store) -> CoursePlan:
            _job, current, _state = await job_plan(store, job)
            edited = _edited(current, file, outcome, title, remove)
            return await edit_plan(store, settings, job, edited, embedder.embed)

        async def on_temporal(client: Any) -> CoursePlan:
            from ..distributed.client import edit_workflow_plan, workflow_plan

            record, _a, _c = await workflow_plan(client, job)
            edited = _edited(CoursePlan.model_validate(record["plan"]), file, outcome, title, remove)
            return await edit_workflow_plan(client, settings, job, edited, embedder.embed)

        plan = _with_temporal(settings, temporal, on_temporal) if temporal else _with_store(settings, work)
    except UserError as exc:
        raise fail_user(exc) from exc
    for table in plan_tables(plan):
        err.print(table)
    where = f" --temporal {temporal}" if temporal else ""
    err.print(f"plan of {job} edited; approve it with: courseforge plan approve {job}{where}")


@plan_app.command("approve")
def approve(job: JobArg, config: ConfigOpt = None, temporal: TemporalOpt = None) -> None:
    """Approve the job's plan; `generate INPUT --job JOB` then finishes the course from it (on
    Temporal the workflow goes on at once; the same command waits for its course)."""
    from ..jobs import approve_plan

    try:
        settings = load_config(config).settings
        if temporal:
            from ..distributed.client import approve_workflow_plan

            plan = _with_temporal(settings, temporal, lambda client: approve_workflow_plan(client, job))
        else:
            plan = _with_store(settings, lambda store: approve_plan(store, job))
    except UserError as exc:
        raise fail_user(exc) from exc
    lessons = sum(len(s.lessons) for s in plan.sections)
    where = f" --temporal {temporal}" if temporal else ""
    err.print(
        f"plan of {job} approved ({lessons} lessons); finish it with: "
        f"courseforge generate INPUT --job {job}{where} -o COURSE.json"
    )
    typer.echo(json.dumps({"job": job, "plan": "approved", "lessons": lessons}))
