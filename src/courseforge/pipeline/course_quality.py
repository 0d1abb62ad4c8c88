"""Phase 4's course-wide check (duplicate lessons and exercises) and the per-course quality
figures the report carries.

The judge's calibration sample (seed 000: "scoring by a stronger model, 10 % sample, ground truth
for the cheap validator") runs with the lesson gates (`lesson_quality.py`) and leaves
`judge_sample` decisions; here every disagreement — judge vs the embedding/rule gates, judge vs
the stronger judge — is counted.
"""

from __future__ import annotations

from typing import Any

from ..domain import Course, Decision, LessonGates
from ..quality.redundancy import Duplicate, find_duplicates, text_vectors
from .state import CourseState, LessonSlot, PipelineContext

__all__ = ["course_duplicates", "quality_summary"]


async def course_duplicates(
    state: CourseState, ctx: PipelineContext, slots: list[LessonSlot]
) -> list[Duplicate]:
    """Later lessons (and lessons with a later exercise) that repeat an earlier one."""
    rs = ctx.settings.gates.redundancy
    name = ctx.settings.gates.embedding_model
    lessons = [(s.id, s.draft.content) for s in slots if s.draft]
    vectors = await text_vectors([t for _, t in lessons], ctx.effects)
    found = find_duplicates(
        lessons, vectors, cosine_at=rs.lesson_cosine.get(name, 0.92), lexical_at=rs.lesson_lexical
    )
    exercises = [
        (f"{s.id}-E{k + 1}", e.question) for s in slots if s.draft for k, e in enumerate(s.draft.exercises)
    ]
    if len(exercises) > 1:
        qvecs = await ctx.effects.embed([q for _, q in exercises])
        dup_ex = find_duplicates(
            exercises,
            qvecs,
            cosine_at=rs.exercise_cosine.get(name, 0.95),
            lexical_at=rs.exercise_lexical,
            kind="exercise",
        )
        # Exercises of one lesson repeating each other are that lesson's business (the exercise
        # gate); across lessons the later lesson is sent back.
        owner = {eid: eid.rsplit("-E", 1)[0] for eid, _ in exercises}
        found += [d for d in dup_ex if owner[d.later] != owner[d.earlier]]
    return found


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def quality_summary(
    lessons: list[LessonGates], decisions: list[Decision], course: Course | None, flags: int
) -> dict[str, Any]:
    """The seeds' per-course figures and the judge's bookkeeping, for `Report.quality`."""
    sims = [g.score for lg in lessons for g in lg.gates if g.gate == "similarity" and g.score is not None]
    comps = [g.score for lg in lessons for g in lg.gates if g.gate == "judge" and g.score is not None]
    samples = [d for d in decisions if d.action in ("judge_sample", "judge_calibration")]
    judged = [d for d in decisions if d.action == "judge"]
    n = len(lessons)
    escalated = {
        d.task.split("/")[0] for d in decisions if d.action == "escalate" and d.task.startswith("lesson:")
    }
    reviewed = {f.target for f in course.review} if course else set()
    lesson_reviews = sum(1 for t in reviewed if t.startswith("lesson:"))

    def disagree(d: Decision, a: str, b: str) -> bool:
        x, y = d.inputs.get(a), d.inputs.get(b)
        return x is not None and y is not None and x != y

    ungrounded = [
        {"lesson_id": lg.lesson_id, "claim": r.split(": ", 1)[1].strip("'\"")}
        for lg in lessons
        for g in lg.gates
        if g.gate == "grounding" and not g.passed
        for r in g.reasons
        if r.startswith(("unsupported: ", "uncertain: "))
    ]
    return {
        "similarity_mean": _mean(sims),
        "composite_mean": _mean(
            [*comps, *(d.inputs["judge_composite"] for d in samples if d.inputs.get("judge_composite"))]
        ),
        "first_attempt_pass_rate": round(sum(1 for lg in lessons if lg.attempts == 1) / n, 4) if n else None,
        "escalation_rate": round(len(escalated) / n, 4) if n else None,
        "human_review_rate": round(lesson_reviews / n, 4) if n else None,
        "review_flags": flags,
        "judge_calls": len(judged),
        "judge_sample": len(samples),
        "judge_vs_gate_disagreements": sum(
            disagree(d, "judge_passed", "gates_passed") for d in [*judged, *samples]
        ),
        "judge_vs_strong_disagreements": sum(disagree(d, "judge_passed", "strong_passed") for d in samples),
        "gate_failures": _gate_failures(lessons),
        "ungrounded_claims": ungrounded,
    }


def _gate_failures(lessons: list[LessonGates]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for lg in lessons:
        for g in lg.gates:
            if not g.passed:
                counts[g.gate] = counts.get(g.gate, 0) + 1
    return dict(sorted(counts.items()))
