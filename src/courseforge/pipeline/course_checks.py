"""Phase 4: course-wide quality. A lesson nearly identical to an earlier one, or one whose
exercise repeats an earlier lesson's, is sent back with the earlier one named (lexical overlap
or embedding cosine at the `gates.redundancy` thresholds); the others stand."""

from __future__ import annotations

from ..config import Settings
from ..domain import Course, ReviewFlag
from ..domain.report import Decision
from ..domain.tasks import lesson_key
from ..providers import Embedder
from ..quality.cross_checks import cross_artifact_problems
from ..quality.redundancy import CourseLesson, course_duplicates, owner_of
from .lessons import generate_lessons
from .state import CourseState, LessonSlot, PipelineContext

__all__ = ["cross_artifact_flags", "run_quality"]


async def cross_artifact_flags(course: Course, settings: Settings, embedder: Embedder) -> list[ReviewFlag]:
    """The assembled course's cross-artifact problems (`quality.cross_checks`) as review flags,
    each naming its lesson, its exercise when there is one, and the reason. Grounding's
    per-model support thresholds decide whether an answer key is found in its lesson."""
    if not settings.gates.cross_artifact:
        return []
    g = settings.gates.grounding
    model = settings.gates.embedding_model
    problems = await cross_artifact_problems(
        course, embedder, supported=g.supported.get(model, 0.62), unsupported=g.unsupported.get(model, 0.4)
    )
    return [ReviewFlag(target=p.target, reason=p.reason, gate=f"cross_artifact:{p.kind}") for p in problems]


async def run_quality(state: CourseState, ctx: PipelineContext) -> CourseState:
    slots = state.usable_slots()
    if len(slots) > 1 and ctx.settings.gates.redundancy.enabled:
        by_id = {s.id: s for s in slots}
        resend: list[LessonSlot] = []
        lessons = [
            CourseLesson(s.id, s.draft.content, [e.question for e in s.draft.exercises])
            for s in slots
            if s.draft
        ]
        for dup in await course_duplicates(lessons, ctx.embedder(), ctx.settings.gates.redundancy):
            later = by_id[owner_of(dup.later)]
            earlier_id = owner_of(dup.earlier)
            if later in resend:
                continue
            earlier = by_id[earlier_id]
            what = "lesson" if dup.kind == "lesson" else f"exercise {dup.earlier} of lesson"
            later.feedback = (
                f"Your {'lesson' if dup.kind == 'lesson' else 'exercise ' + dup.later} repeated {what} "
                f"{earlier.id} ({earlier.title!r}), similarity {dup.cosine:.2f}; cover different material."
            )
            state.decisions.append(
                Decision(
                    task=lesson_key(later.id),
                    action="regenerate",
                    tier="",
                    reason=f"duplicate of {dup.earlier} (cosine {dup.cosine:.3f}, lexical {dup.lexical:.0f})",
                    inputs={"kind": dup.kind},
                )
            )
            resend.append(later)
        for slot in resend:
            slot.rounds += 1
        if resend:
            await generate_lessons(state, ctx, resend, "quality")
    return state
