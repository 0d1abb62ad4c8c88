"""The review workflow, one service for the HTTP API and the dashboard: a reviewer's approve,
edit or regenerate on an item of the queue, and the dashboard's save-then-regate edit.

Every refusal is a domain error (`errors.NotFound`, `Conflict`, `StaleVersion`,
`ActionRefused`) whose problems name the field at fault (`review_id`, `content`, `note`,
`course_version`, `gates.<gate>`); the entry layer maps each to its answer (service/api_reviews.py).

Each action is atomic: of concurrent actions on one item one wins and the others get `Conflict`;
concurrent edits of different lessons of one course all land (an edit that lost the race to the
course is applied again to the newer course). An action made conditional on a course version
(`if_version`, the tag `course_tag` gives) raises `StaleVersion` when the course has moved on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from ..config import Settings
from ..domain import Course
from ..domain.tasks import lesson_key
from ..engine import Engine
from ..errors import ActionRefused, Conflict, NotFound, StaleVersion
from ..pipeline import validate_analysis
from ..pipeline.check import check_course
from ..storage import Job, ReviewItem, Store, StoreConflict
from .reviews import edit_verdicts, unanswered_reviews

__all__ = ["RegateOutcome", "ReviewAction", "ReviewService", "course_tag", "lesson_in"]

#: Times a review action is re-applied to a course another action changed first.
_COURSE_WRITE_ATTEMPTS = 8
_NEW_STATUS = {"approve": "approved", "edit": "edited", "regenerate": "regenerating"}
#: The note the dashboard's save-then-regate edit records when the reviewer wrote none.
DASHBOARD_EDIT_NOTE = "saved from the review page; re-gated after saving"


class ReviewAction(BaseModel):
    """approve: accept as is. edit: replace the lesson's markdown with `content`; the edit goes
    through the lesson's gates first and, failing any, is refused (422, each failing gate named)
    unless `approve_anyway` with the reason in `note`. regenerate: generate the lesson again,
    with `note` as the reviewer's feedback; with `best_quality` straight on the top tier."""

    # The schema says what is refused before any state is read: an edit without content, a
    # flag that is not a JSON boolean ("yes", 0).
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "if": {"properties": {"action": {"const": "edit"}}, "required": ["action"]},
            "then": {"required": ["content"], "properties": {"content": {"type": "string"}}},
        },
    )
    action: Literal["approve", "edit", "regenerate"]
    note: str = Field(default="", max_length=2000)
    content: str | None = Field(default=None, min_length=1, max_length=200_000)
    approve_anyway: StrictBool = False
    #: regenerate only: the reviewer says the lesson needs the best quality, so it is generated
    #: on the top tier directly, bypassing the tiers below.
    best_quality: StrictBool = False


@dataclass(frozen=True, slots=True)
class RegateOutcome:
    """What the gates said of an edit saved from the dashboard: `failed` empty when every gate
    passed (the item is "edited"), else the failing gates and reasons (the item is open again)."""

    review_id: str
    failed: str = ""
    checked: bool = True


def course_tag(version: int) -> str:
    """The tag of a stored course's version (the API's `ETag`; `if_version` compares with it)."""
    return f'"course-v{version}"'


def lesson_in(course: dict[str, Any] | None, lesson_id: str) -> dict[str, Any] | None:
    """The lesson `lesson_id` of a stored course, as the stored data itself (None: not a
    lesson of it); changing it changes the course."""
    for section in (course or {}).get("sections", []):
        for lesson in section.get("lessons", []):
            if lesson.get("id") == lesson_id:
                return lesson  # type: ignore[no-any-return]
    return None


class ReviewService:
    """The review queue's actions. `schedule_revision` starts a "regenerate" in the background
    (the service's `JobManager.schedule_revision`); `settings` are the gates' for re-gating."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        engine: Engine,
        *,
        schedule_revision: Callable[[str], None],
    ) -> None:
        self._settings, self._store, self._engine = settings, store, engine
        self._schedule_revision = schedule_revision

    async def listing(self, *, status: str, limit: int, tenant: str | None = None) -> list[ReviewItem]:
        """Items of `status`, most uncertain first (of one tenant's jobs unless `tenant` is None)."""
        return await self._store.list_reviews(status=status, limit=limit, tenant=tenant)

    async def visible(self, review_id: str, *, tenant: str | None) -> ReviewItem:
        """The item, if a caller of `tenant` (None: every tenant) may see it; else `NotFound`."""
        item = await self._store.get_review(review_id)
        owner = await self._store.get_job(item.job_id) if item is not None else None
        if item is None or owner is None or not _sees(tenant, owner):
            raise NotFound("no such review item", [("review_id", f"{review_id!r} not found")])
        return item

    async def act(
        self,
        review_id: str,
        action: ReviewAction,
        *,
        tenant: str | None = None,
        if_version: str | None = None,
    ) -> ReviewItem:
        """Carry out `action` on item `review_id`; returns the updated item. approve and edit
        answer it at once; regenerate leaves it "regenerating" and starts the regeneration."""
        item = await self.visible(review_id, tenant=tenant)
        if item.status != "open":
            raise Conflict("review item already answered", [("review_id", f"item is {item.status}")])
        if action.action == "edit" and action.content is None:
            raise ActionRefused("edit needs content", [("content", "required for action 'edit'")])
        resolution: dict[str, Any] = {**item.resolution, "action": action.action, "note": action.note}
        if action.action == "regenerate":
            resolution["best_quality"] = action.best_quality
        for _ in range(_COURSE_WRITE_ATTEMPTS):
            if await self._write(item, action, resolution, if_version):
                break
        else:
            raise Conflict("the course kept changing", [("review_id", "try again")])
        if action.action == "regenerate":
            self._schedule_revision(review_id)
        updated = await self._store.get_review(review_id)
        assert updated is not None
        return updated

    async def _write(
        self, item: ReviewItem, action: ReviewAction, resolution: dict[str, Any], if_version: str | None
    ) -> bool:
        """One try at answering the item (and changing the course) in one transaction; False
        when another edit of the course landed first (try again on the newer course)."""
        stored = await self._store.get_course_version(item.job_id)
        if if_version is not None and (stored is None or if_version.strip() != course_tag(stored[1])):
            now = course_tag(stored[1]) if stored else "absent"
            raise StaleVersion(
                "the course changed since it was read", [("course_version", f"the course is now {now}")]
            )
        course = stored[0] if stored is not None else None
        lesson = lesson_in(course, item.target)
        if action.action != "approve" and lesson is None:
            raise Conflict("target is not a lesson", [("review_id", item.target)])
        write: tuple[str, dict[str, Any], str, int] | None = None
        if action.action != "regenerate" and stored is not None and course is not None:
            # regenerate changes the course when the regeneration ends (jobs.revise_review)
            if action.action == "edit" and lesson is not None and action.content is not None:
                # The edit goes through the lesson's gates first (once, on the course as read).
                if "gates" not in resolution:
                    resolution.update(await self._gated_edit(item, course, action))
                lesson["content"] = action.content
                resolution["content_chars"] = len(action.content)
            if not await unanswered_reviews(self._store, item.job_id, besides=item.id):
                course["status"] = "approved"
            write = (item.job_id, course, str(course.get("status", "")), stored[1])
        try:
            await self._store.answer_review(
                item.id,
                expect_status="open",
                status=_NEW_STATUS[action.action],
                resolution=resolution,
                course=write,
            )
        except StoreConflict as conflict:
            if conflict.what == "course" and if_version is None:
                return False  # another edit of this course landed first: apply this one to the new course
            if conflict.what == "course":
                raise StaleVersion(
                    "the course changed since it was read", [("course_version", str(conflict))]
                ) from None
            current = await self._store.get_review(item.id)
            raise Conflict(
                "review item already answered",
                [("review_id", f"item is {current.status if current else 'gone'}")],
            ) from None
        return True

    async def _gated_edit(
        self, item: ReviewItem, course: dict[str, Any], action: ReviewAction
    ) -> dict[str, Any]:
        """An edit's gate verdicts for the item's resolution; `ActionRefused` when a gate fails
        and the reviewer has not approved it anyway with a reason (`note`)."""
        assert action.content is not None
        verdicts = await edit_verdicts(self._engine, self._store, item, course, action.content)
        failed = [v for v in verdicts if not v["passed"]]
        if failed and not action.approve_anyway:
            problems = [(f"gates.{v['gate']}", "; ".join(v["reasons"])[:300] or "failed") for v in failed]
            raise ActionRefused(  # not Conflict: the item is untouched; Conflict means another action won
                "the edited lesson fails its gates (approve_anyway with a note to keep it)", problems
            )
        if failed and not action.note.strip():
            raise ActionRefused(
                "approving a failing edit needs a reason", [("note", "required with approve_anyway")]
            )
        extra: dict[str, Any] = {"gates": verdicts}
        if failed:
            extra["approved_anyway"] = {"reason": action.note, "failed_gates": [v["gate"] for v in failed]}
        return extra

    async def save_edit(self, review_id: str, content: str | None, note: str = "") -> RegateOutcome:
        """The dashboard's edit: saved whatever its gates say (approved anyway, with `note` or
        `DASHBOARD_EDIT_NOTE` as the reason), then the gates again on the course as saved
        (`regate`): still flagged puts the item back in the queue with the new reasons."""
        edit = ReviewAction(
            action="edit", note=note or DASHBOARD_EDIT_NOTE, content=content, approve_anyway=True
        )
        await self.act(review_id, edit)
        return await self.regate(review_id)

    async def regate(self, review_id: str) -> RegateOutcome:
        """The gates again on an edited lesson (`courseforge check`'s path, no model call):
        still flagged puts the item back in the queue, with the new reasons."""
        item = await self._store.get_review(review_id)
        job = await self._store.get_job(item.job_id) if item else None
        data = await self._store.get_course(item.job_id) if item else None
        if item is None or job is None or data is None:
            return RegateOutcome(review_id, checked=False)
        course = Course.model_validate(data)
        checked, flags = await check_course(
            course, validate_analysis(job.analysis), self._settings, self._engine.embedder()
        )
        gates = next((lg.gates for lg in checked.lessons if lg.lesson_id == item.target), [])
        mine = [f for f in flags if f.target == lesson_key(item.target)]
        resolution = {**item.resolution, "regated": [g.model_dump(mode="json") for g in gates]}
        if not mine:
            await self._store.update_review(review_id, status="edited", resolution=resolution)
            return RegateOutcome(review_id)
        failed = "; ".join(f"{f.gate}: {f.reason}" for f in mine)[:500]
        resolution["regate_failed"] = failed
        await self._store.update_review(review_id, status="open", resolution=resolution)
        if data.get("status") != "needs_review":
            data["status"] = "needs_review"
            await self._store.update_course(item.job_id, data, course_status="needs_review")
        return RegateOutcome(review_id, failed=failed)

    async def queue(self, status: str, limit: int) -> list[tuple[ReviewItem, str | None]]:
        """The dashboard's queue: each item with its lesson's current markdown (None when the
        target is not a lesson of the stored course)."""
        courses: dict[str, dict[str, Any] | None] = {}
        out = []
        for item in await self._store.list_reviews(status=status, limit=limit):
            if item.job_id not in courses:
                courses[item.job_id] = await self._store.get_course(item.job_id)
            lesson = lesson_in(courses[item.job_id], item.target)
            out.append((item, str(lesson.get("content", "")) if lesson is not None else None))
        return out


def _sees(tenant: str | None, job: Job) -> bool:
    return tenant is None or job.tenant == tenant
