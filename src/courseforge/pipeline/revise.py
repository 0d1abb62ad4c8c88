"""A reviewer's "regenerate": one lesson of a finished course generated again, outside the five
phases, with the reviewer's note as feedback and the same gates as phase 3.

The course state is rebuilt from the stored course (outcomes, structure, style, the other
lessons), so the new lesson is written against exactly what the course already says. Its calls
carry their own task tag ("lesson:S2-L1/<tag>"), so durable effects checkpoint them under their
own step keys: a regeneration interrupted and run again pays only for what had not finished.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from ..domain import AnalysisResult, Course, Lesson
from ..domain.drafts import MetadataCoreDraft, MetadataExtrasDraft
from ..domain.report import LessonGates
from ..errors import UserError
from ..quality.base import uncertainty
from .assemble import draft_of, lesson_gates_of, lesson_of
from .lessons import generate_lesson
from .state import CourseState, LessonSlot, PipelineContext

__all__ = ["Revision", "revise_lesson", "state_from_course"]


def state_from_course(analysis: AnalysisResult, course: Course) -> CourseState:
    """The course state a finished course implies: its metadata as the accepted drafts and each
    lesson as an accepted slot."""
    meta = course.metadata
    plans = list(meta.course_structure)
    state = CourseState(
        analysis=analysis, course_id=course.course_id, lesson_counts=[len(p.lessons) for p in plans]
    )
    # Built from what the course already holds, not from a model: the draft bounds do not apply.
    state.core = MetadataCoreDraft.model_construct(
        course_title=meta.course_title,
        description=meta.description,
        learning_outcomes=[],
        pedagogical_strategy=meta.pedagogical_strategy,
        domain_taxonomy=meta.domain_taxonomy,
        sections=[],
    )
    state.extras = MetadataExtrasDraft.model_construct(
        target_audience=meta.target_audience,
        prerequisites=meta.prerequisites,
        time_estimate_minutes=meta.time_estimate_minutes,
        style_guidelines=meta.style_guidelines,
    )
    state.outcomes = list(meta.learning_outcomes)
    state.plans = plans
    number = {o.id: i + 1 for i, o in enumerate(state.outcomes)}
    written = {lesson.id: lesson for lesson in course.lessons()}
    for si, plan in enumerate(plans):
        for lp in plan.lessons:
            slot = LessonSlot(
                id=lp.id,
                section_index=si,
                title=lp.title,
                outcome_numbers=[number[o] for o in lp.outcome_ids if o in number],
            )
            lesson = written.get(lp.id)
            if lesson is not None:
                slot.draft, slot.status = draft_of(lesson, number), "accepted"
            state.slots[lp.id] = slot
    return state


@dataclass(slots=True)
class Revision:
    lesson_id: str
    #: accepted (every gate passed), flagged (best attempt kept, still needs a person) or failed.
    status: str
    lesson: Lesson | None
    reason: str = ""
    #: The report's entry for the new attempt (attempts, tier, model, every gate's verdict).
    gates: LessonGates | None = None
    #: How close its failed gates came to passing (0 when none failed; docs/report.md).
    uncertainty: float = 0.0


async def revise_lesson(
    state: CourseState,
    lesson_id: str,
    note: str,
    tag: str,
    ctx: PipelineContext,
    *,
    best_quality: bool = False,
) -> Revision:
    """Generate lesson `lesson_id` again through the cascade with its gates. The reviewer's
    `note` goes into the prompt as feedback; `tag` names the calls (see the module doc).
    `best_quality`: the reviewer says it needs the best quality, so it starts on the top tier
    (straight to the best model, bypassing the tiers below; the budget's step-down still holds)."""
    slot = state.slots.get(lesson_id)
    if slot is None:
        raise UserError(
            "no such lesson in the course", [("target", f"{lesson_id!r} is not a lesson of this course")]
        )
    previous = slot.draft
    slot.draft, slot.status, slot.gates, slot.task_tag = None, "pending", [], tag
    slot.feedback = f"A reviewer asked for a new version of this lesson. {note}".strip()
    if best_quality:
        slot.floor_tier = ctx.settings.routing.ladder[-1]
        slot.floor_reason = "a reviewer asked for the best quality: straight to the top tier, past the ladder"
    await generate_lesson(state, slot, ctx, asyncio.Semaphore(1), "review")
    await asyncio.gather(*state.background, return_exceptions=True)
    if slot.draft is None or slot.status == "failed":
        slot.draft = previous
        return Revision(
            lesson_id, "failed", None, slot.reason, lesson_gates_of(slot), uncertainty(slot.gates)
        )
    return Revision(
        lesson_id,
        slot.status,
        lesson_of(state, slot),
        slot.reason,
        lesson_gates_of(slot),
        uncertainty(slot.gates),
    )
