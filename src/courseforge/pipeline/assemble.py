"""The course and the report's lesson entries, assembled from the course state: every usable
lesson in its section, a review flag (with its uncertainty) for each lesson kept only as the
best of its attempts."""

from __future__ import annotations

from ..domain import (
    Citation,
    Course,
    Exercise,
    GateScore,
    Lesson,
    LessonGates,
    Metadata,
    ReviewFlag,
    Section,
)
from ..domain.drafts import ExerciseDraft, LessonDraft
from ..domain.tasks import lesson_key
from ..quality.base import GateResult, uncertainty
from .state import CourseState, LessonSlot

__all__ = ["assemble_course", "draft_of", "gate_score", "lesson_gate_report", "lesson_gates_of", "lesson_of"]


def gate_score(g: GateResult) -> GateScore:
    """A gate's result as the report records it."""
    return GateScore(
        gate=g.gate,
        passed=g.passed,
        score=g.score,
        threshold=g.threshold,
        verdict=g.verdict,
        reasons=list(g.reasons),
    )


def lesson_gates_of(slot: LessonSlot) -> LessonGates:
    """The report's entry for one lesson: attempts, final tier and model, each gate's verdict."""
    return LessonGates(
        lesson_id=slot.id,
        attempts=slot.attempts,
        final_tier=slot.tier,
        final_model=slot.model,
        status=slot.status,
        start_tier=slot.start_tier,
        gates=[gate_score(g) for g in slot.gates],
    )


def lesson_gate_report(state: CourseState) -> list[LessonGates]:
    return [lesson_gates_of(s) for s in state.slots.values()]


def lesson_of(state: CourseState, slot: LessonSlot) -> Lesson:
    """The course's lesson built from a generated slot (its draft must be set)."""
    assert slot.draft is not None
    ids = [state.outcome_id(n) for n in slot.outcome_numbers]
    exercises = [
        Exercise(
            id=f"{slot.id}-E{k + 1}",
            type=e.type,
            question=e.question,
            options=e.options,
            answer=e.answer,
            explanation=e.explanation,
            outcome_ids=[state.outcome_id(e.outcome)] if 1 <= e.outcome <= len(state.outcomes) else ids,
        )
        for k, e in enumerate(slot.draft.exercises)
    ]
    exercises += state.bank.get(slot.id, [])  # vetted questions, as they are, with their source ids
    citations = [Citation(source_id=c) for c in slot.draft.citations] or None
    return Lesson(
        id=slot.id,
        title=slot.title,
        outcome_ids=ids,
        content=slot.draft.content,
        exercises=exercises,
        citations=citations,
    )


def draft_of(lesson: Lesson, number: dict[str, int]) -> LessonDraft:
    """A course lesson back as the draft the gates and the judge read (`number`: outcome id ->
    its 1-based number; an exercise without a known outcome gets 0)."""
    return LessonDraft.model_construct(
        content=lesson.content,
        exercises=[
            ExerciseDraft.model_construct(
                type=e.type,
                question=e.question,
                options=e.options,
                answer=e.answer,
                explanation=e.explanation,
                outcome=number.get(e.outcome_ids[0], 0) if e.outcome_ids else 0,
            )
            for e in lesson.exercises
        ],
        citations=[c.source_id for c in lesson.citations or []],
    )


def assemble_course(state: CourseState) -> Course:
    assert state.core is not None and state.extras is not None
    sections = []
    for si, plan in enumerate(state.plans):
        lessons = []
        for slot in state.slots_in(si):
            if slot.draft is None or slot.status == "failed":
                continue
            if slot.status == "flagged":
                state.flags.append(
                    ReviewFlag(
                        target=lesson_key(slot.id),
                        reason=slot.reason,
                        gate="lesson",
                        score=next((g.score for g in slot.gates if g.gate == "similarity"), None),
                        uncertainty=uncertainty(slot.gates),
                    )
                )
            lessons.append(lesson_of(state, slot))
        sections.append(
            Section(id=plan.id, title=plan.title, section_type=plan.section_type, lessons=lessons)
        )
    core, extras = state.core, state.extras
    metadata = Metadata(
        course_title=core.course_title,
        description=core.description,
        learning_outcomes=state.outcomes,
        pedagogical_strategy=core.pedagogical_strategy,
        course_structure=state.plans,
        domain_taxonomy=core.domain_taxonomy,
        target_audience=extras.target_audience,
        prerequisites=extras.prerequisites,
        time_estimate_minutes=extras.time_estimate_minutes,
        style_guidelines=extras.style_guidelines,
    )
    status = "needs_review" if state.flags else "approved"
    return Course(
        course_id=state.course_id, status=status, metadata=metadata, sections=sections, review=state.flags
    )
