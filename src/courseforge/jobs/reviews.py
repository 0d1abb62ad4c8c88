"""The human-review queue: what a person should look at, and a reviewer's "regenerate".

Every review flag of a finished course becomes an item with the flag's uncertainty (how close
its deciding gates came to the other verdict, docs/report.md), so the queue ranks the coin
flips first. "regenerate" generates the lesson again with the reviewer's note as feedback,
checkpointed under the job (an interrupted regeneration resumes paying only for what had not
finished), and saves the new lesson, the report and the item in one transaction, conditional on
the course version it was applied to (a concurrent edit is never overwritten). An "edit" goes
through the same gates first (`edit_verdicts`): the reviewer sees each verdict and may approve a
failing edit anyway, with a recorded reason.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import Any

from ..domain import Course, Report, ReviewFlag
from ..domain.tasks import lesson_key, lesson_of
from ..engine import Checkpoints, Engine
from ..errors import UserError
from ..pipeline import validate_analysis
from ..pipeline.check import check_one_lesson
from ..pipeline.report_builder import recompute_totals
from ..quality.judge import in_sample
from ..storage import ReviewItem, Store, StoreConflict

__all__ = [
    "SPOT_CHECK",
    "edit_verdicts",
    "review_items",
    "revise_review",
    "spot_checked",
    "unanswered_reviews",
]

#: Times a regeneration's result is re-applied to a course that changed under it before giving up.
_SAVE_ATTEMPTS = 8


#: The review item's gate for a random spot-check of an approved course.
SPOT_CHECK = "spot_check"


def spot_checked(job_id: str, rate: float, seed: str = "") -> bool:
    """Is this job's approved course in the random spot-check sample? Seeded by the job id (and
    `seed`): the same job is always in or out, and about `rate` of all jobs are in."""
    return in_sample(f"{seed}spot-check/{job_id}", rate)


def review_items(
    job_id: str, course: Course, *, spot_check_rate: float = 0.0, seed: str = ""
) -> list[ReviewItem]:
    """The review queue's items for a finished course: one per flag, and for an approved course
    in the spot-check sample (a person samples approved courses to catch systematic issues)
    one item for the whole course. The spot-check does not change the course's status."""
    items = [
        ReviewItem(
            id=f"{job_id}:{i}:{lesson_of(flag.target) or flag.target}",
            job_id=job_id,
            target=lesson_of(flag.target) or flag.target,
            reason=flag.reason,
            gate=flag.gate,
            uncertainty=flag.uncertainty or 0.0,
        )
        for i, flag in enumerate(course.review)
    ]
    if course.status == "approved" and spot_checked(job_id, spot_check_rate, seed):
        items.append(
            ReviewItem(
                id=f"{job_id}:spot-check:course",
                job_id=job_id,
                target="course",
                reason=f"random spot-check of an approved course ({spot_check_rate:.0%} sample: a person checks a share of approved courses for systematic issues)",
                gate=SPOT_CHECK,
                uncertainty=0.0,
            )
        )
    return items


async def unanswered_reviews(store: Store, job_id: str, *, besides: str = "") -> list[ReviewItem]:
    """The job's review items still waiting for a person or a regeneration (other than
    `besides`): while there are any, its course stays needs_review."""
    return [
        r
        for status in ("open", "regenerating")
        for r in await store.list_reviews(status=status, limit=100_000, job_id=job_id)
        if r.id != besides
    ]


async def edit_verdicts(
    engine: Engine, store: Store, item: ReviewItem, course_data: dict[str, Any], content: str
) -> list[dict[str, Any]]:
    """A reviewer's edit of lesson `item.target` through the same gates as a generated lesson
    (`courseforge check`'s: no LLM judge), against the course as stored with the edit in place:
    each gate as {gate, passed, score, reasons}. Nothing is saved here."""
    job = await store.get_job(item.job_id)
    if job is None:
        raise UserError("the job has no stored course", [("review_id", f"job {item.job_id!r}")])
    course = Course.model_validate(course_data)
    for section in course.sections:
        for lesson in section.lessons:
            if lesson.id == item.target:
                lesson.content = content
    results = await check_one_lesson(
        course, validate_analysis(job.analysis), engine.settings, engine.embedder(), item.target
    )
    return [
        {"gate": r.gate, "passed": r.passed, "score": r.score, "reasons": list(r.reasons)[:5]}
        for r in results
    ]


def _revision_tag(item: ReviewItem) -> str:
    """Step-key tag of this item's next regeneration: the same one again after an interruption
    (so finished calls replay), a new one for each later request on the same item."""
    digest = hashlib.sha256(item.id.encode()).hexdigest()[:10]
    return f"review-{digest}-{len(item.resolution.get('history', [])) + 1}"


async def revise_review(engine: Engine, store: Store, review_id: str) -> ReviewItem:
    """Carry out a reviewer's "regenerate" on item `review_id` (status "regenerating", the
    reviewer's note in its resolution): the lesson is generated again with the note as feedback,
    through checkpointing effects under the job's id, so running this again after a crash pays
    only for calls that had not finished. Then, in one transaction: the lesson replaced in the
    stored course (only when the new one was generated), the calls appended to the job's records
    and report (totals recomputed), and the item "regenerated" (every gate passed) or "open" again
    with the new reason (still flagged, or the regeneration failed). Returns the updated item."""
    item = await store.get_review(review_id)
    if item is None or item.status != "regenerating":
        raise UserError("nothing to regenerate", [("review_id", f"{review_id!r} is not regenerating")])
    job = await store.get_job(item.job_id)
    course_data, report_data = await store.get_course(item.job_id), await store.get_report(item.job_id)
    if job is None or course_data is None or report_data is None:
        raise UserError("the job has no stored course", [("review_id", f"job {item.job_id!r}")])
    analysis = validate_analysis(job.analysis)
    course, report = Course.model_validate(course_data), Report.model_validate(report_data)
    checkpoints = await Checkpoints.load(store, job.id)
    note = str(item.resolution.get("note", ""))
    tag = _revision_tag(item)
    result = await engine.revise(
        analysis,
        course,
        item.target,
        note=note,
        tag=tag,
        spent_usd=report.total_cost_usd,
        checkpoints=checkpoints,
        best_quality=bool(item.resolution.get("best_quality", False)),
    )
    revision = result.revision
    target = lesson_key(item.target)
    paid = sum((c.cost_usd for c in result.calls if not c.replayed), Decimal(0))
    entry = {
        "tag": tag,
        "status": revision.status,
        "reason": revision.reason[:500],
        "calls": len(result.calls),
        "replayed_calls": sum(1 for c in result.calls if c.replayed),
        "paid_usd": float(paid),
    }
    resolution = {**item.resolution, "history": [*item.resolution.get("history", []), entry]}
    review_status = "regenerated" if revision.status == "accepted" else "open"
    # The model work took a while: other reviewers may have changed the course meanwhile. The
    # change is applied to the course as it is now and written only if it is still that version;
    # on a lost race it is applied again to the newer course (nothing is paid again).
    for _ in range(_SAVE_ATTEMPTS):
        stored = await store.get_course_version(job.id)
        report_data = await store.get_report(job.id)
        if stored is None or report_data is None:
            raise UserError("the job has no stored course", [("review_id", f"job {item.job_id!r}")])
        course, report = Course.model_validate(stored[0]), Report.model_validate(report_data)
        if revision.lesson is not None:
            for section in course.sections:
                section.lessons = [
                    revision.lesson if x.id == revision.lesson.id else x for x in section.lessons
                ]
        course.review = [f for f in course.review if f.target != target]
        if revision.status != "accepted":
            reason = (
                f"regenerated, still flagged: {revision.reason}"
                if revision.lesson is not None
                else f"regeneration failed: {revision.reason}"
            )
            gates = revision.gates.gates if revision.gates is not None else []
            course.review.append(
                ReviewFlag(
                    target=target,
                    reason=reason[:1000],
                    gate="lesson",
                    score=next((g.score for g in gates if g.gate == "similarity"), None),
                    uncertainty=revision.uncertainty,
                )
            )
        # The report: every call counted once, totals recomputed over all of them.
        report.calls += result.calls
        report.decisions += result.decisions
        recompute_totals(report)
        if revision.gates is not None:
            report.lessons = [revision.gates if x.lesson_id == item.target else x for x in report.lessons]
        report.review_flags = len(course.review)
        review_reason = item.reason if revision.status == "accepted" else course.review[-1].reason
        still_open = await unanswered_reviews(store, job.id, besides=item.id) or review_status == "open"
        course.status = "needs_review" if still_open else "approved"
        report.summary["revisions"] = int(report.summary.get("revisions", 0)) + 1
        try:
            await store.save_revision(
                job.id,
                run=max(job.runs, 1),
                course=course.model_dump(mode="json"),
                course_status=course.status,
                report=report.model_dump(mode="json"),
                calls=[c.model_dump(mode="json") for c in result.calls],
                review_id=item.id,
                review_status=review_status,
                review_reason=review_reason,
                resolution=resolution,
                expected_version=stored[1],
            )
        except StoreConflict as conflict:
            if conflict.what == "course":
                continue
            raise UserError("nothing to regenerate", [("review_id", str(conflict))]) from conflict
        break
    else:
        raise UserError(
            "the course kept changing", [("review_id", f"{_SAVE_ATTEMPTS} attempts to save lost")]
        )
    updated = await store.get_review(item.id)
    assert updated is not None
    return updated
