"""Phase 4: course-wide quality.

First, each lesson's exercises whose answer its own text does not state (the cross-artifact
"answerable" check that used to flag them only after assembly) are asked again on their own: one
short call given the lesson's text, for just those exercises, the lesson kept. A new exercise
replaces an old one only when its answer is found in the lesson and it passes the exercise gates
the old one had to pass; whatever is still not answerable is flagged after assembly as before.
Then a lesson nearly identical to an earlier one, or one whose exercise repeats an earlier
lesson's, is sent back with the earlier one named (lexical overlap or embedding cosine at the
`gates.redundancy` thresholds); the others stand."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace

from ..config import Settings
from ..domain import Course, ReviewFlag
from ..domain.drafts import ExerciseDraft, LessonDraft
from ..domain.report import Decision
from ..domain.tasks import TaskId, lesson_key
from ..errors import BadResponse, BudgetExceeded, ProviderError
from ..providers import Embedder
from ..providers.effects import CallSpec
from ..quality.answer_keys import AnswerKeyGate
from ..quality.base import GateContext, GateResult
from ..quality.cross_checks import cross_artifact_problems, unanswerable
from ..quality.gates import ExercisesGate, repair_exercise
from ..quality.lesson_gates import ExerciseOutcomesGate, safety_gate
from ..quality.redundancy import CourseLesson, course_duplicates, owner_of
from .lessons import brief_of, exercises_request, generate_lessons
from .state import CourseState, LessonSlot, PipelineContext

__all__ = ["EXERCISE_ASKS", "answerable_exercises", "cross_artifact_flags", "run_quality"]

#: Exercises-only calls a lesson gets in phase 4 for its unanswerable exercises.
EXERCISE_ASKS = 2


def _answerable_bounds(settings: Settings) -> tuple[float, float]:
    """Grounding's per-model (supported, unsupported) cosine bounds, as the answerable check reads them."""
    g = settings.gates.grounding
    model = settings.gates.embedding_model
    return g.supported.get(model, 0.62), g.unsupported.get(model, 0.4)


async def cross_artifact_flags(course: Course, settings: Settings, embedder: Embedder) -> list[ReviewFlag]:
    """The assembled course's cross-artifact problems (`quality.cross_checks`) as review flags,
    each naming its lesson, its exercise when there is one, and the reason. Grounding's
    per-model support thresholds decide whether an answer key is found in its lesson."""
    if not settings.gates.cross_artifact:
        return []
    supported, unsupported = _answerable_bounds(settings)
    problems = await cross_artifact_problems(course, embedder, supported=supported, unsupported=unsupported)
    return [ReviewFlag(target=p.target, reason=p.reason, gate=f"cross_artifact:{p.kind}") for p in problems]


async def _unanswerable_in(
    slot: LessonSlot, ctx: PipelineContext, exercises: list[ExerciseDraft]
) -> list[int]:
    assert slot.draft is not None
    supported, unsupported = _answerable_bounds(ctx.settings)
    absent = await unanswerable(
        slot.draft.content,
        exercises,
        ctx.embedder(),
        supported=supported,
        unsupported=unsupported,
        lesson_id=slot.id,
    )
    return [i for i, _ in absent]


def _exercise_gates(
    draft: LessonDraft, slot: LessonSlot, settings: Settings, *, alone: bool
) -> list[GateResult]:
    """The lesson gates about exercises (well-formed and counted, answer keys their
    explanations agree with, the lesson's outcomes, safety) on `draft`; `alone`: one new
    exercise judged by itself (no count, no outcome coverage)."""
    gates = settings.gates
    results = [
        ExercisesGate(1 if alone else gates.min_exercises).check(draft, GateContext()),
        AnswerKeyGate().check(draft, GateContext()),
    ]
    if not alone:
        tags = {"outcome_numbers": slot.outcome_numbers}
        results.append(ExerciseOutcomesGate().check(draft, GateContext(values=tags)))
        if gates.safety.enabled:
            results.append(safety_gate(settings).check(draft, GateContext()))
    return results


async def _ask_exercises(
    state: CourseState,
    slot: LessonSlot,
    ctx: PipelineContext,
    todo: list[int],
    attempt: int,
    feedback: str,
) -> tuple[list[ExerciseDraft], str]:
    """`len(todo)` new exercises for slot's lesson text, assessing the outcomes of the ones they
    replace (one exercises-only call; `[]` when its answer is unusable), and why not if so.
    Budget and provider errors end the asking (the caller keeps what it has)."""
    assert slot.draft is not None
    settings = ctx.settings
    old = slot.draft.exercises
    numbers = sorted({old[i].outcome for i in todo} & set(slot.outcome_numbers)) or list(slot.outcome_numbers)
    brief = replace(
        brief_of(state, slot, []),
        outcomes=[(n, state.outcomes[n - 1]) for n in numbers],
        outcome_numbers=numbers,
        reused=max(0, settings.gates.max_exercises - len(todo)),
    )
    tier = settings.routing.exercises_tier or slot.tier or settings.routing.ladder[0]
    task = TaskId("exercises", slot.id, round=slot.rounds)
    tags = {"phase": "quality", "task": task.key()}
    request = exercises_request(brief, settings, slot.draft.content, feedback=feedback, tags=tags, tier=tier)
    spec = CallSpec(phase="quality", task=task, tier=tier, attempt=attempt, request=request)
    answer = await ctx.effects.call(spec)
    try:
        fresh = [
            ExerciseDraft.model_validate(e)
            for e in json.loads(answer.response.text, strict=False)["exercises"]
        ]
    except (ValueError, KeyError, TypeError) as exc:
        answer.reject(f"schema: {exc}"[:300])
        return [], f"its answer was unusable ({type(exc).__name__})"
    return fresh, ""


def _ask_feedback(old: list[ExerciseDraft], todo: list[int], refused: list[str]) -> str:
    kept = [e.question for k, e in enumerate(old) if k not in todo]
    text = (
        f"Write only {len(todo)} new exercise(s). The lesson's exercise(s) "
        + "; ".join(repr(old[i].question) for i in todo)
        + " could not be answered from the lesson: the answer is not stated in its text. Ask about "
        "a point the lesson states, the answer in the lesson's own words."
    )
    if kept:
        text += " The lesson keeps " + "; ".join(repr(q) for q in kept) + ": ask about something else."
    if refused:
        text += " Not usable either: " + "; ".join(refused) + "."
    return text


async def _refresh_exercises(state: CourseState, slot: LessonSlot, ctx: PipelineContext) -> None:
    """Slot's exercises not answerable from its lesson, asked again alone (`EXERCISE_ASKS`
    calls at most); each replaced by a new one that is answerable and passes the exercise gates,
    the lesson as a whole kept only if its exercise gates still pass."""
    assert slot.draft is not None
    old = list(slot.draft.exercises)
    bad = await _unanswerable_in(slot, ctx, old)
    if not bad:
        return
    replaced: dict[int, ExerciseDraft] = {}
    refused: list[str] = []
    for attempt in range(1, EXERCISE_ASKS + 1):
        todo = [i for i in bad if i not in replaced]
        try:
            fresh, why = await _ask_exercises(
                state, slot, ctx, todo, attempt, _ask_feedback(old, todo, refused)
            )
        except (BadResponse, ProviderError, BudgetExceeded) as exc:
            refused.append(f"the call failed ({type(exc).__name__})")
            if not isinstance(exc, BadResponse):
                break
            continue
        if why:
            refused.append(why)
        for exercise in fresh:
            repair_exercise(exercise)
        found = set(await _unanswerable_in(slot, ctx, fresh))
        for k, (i, exercise) in enumerate(zip(todo, fresh, strict=False)):
            alone = LessonDraft.model_construct(
                content=slot.draft.content, exercises=[exercise], citations=[]
            )
            problems = [r for g in _exercise_gates(alone, slot, ctx.settings, alone=True) for r in g.reasons]
            if k in found:
                problems.append("its answer is not stated in the lesson either")
            if problems:
                refused.append(f"{exercise.question!r}: {'; '.join(problems)}"[:300])
            else:
                replaced[i] = exercise
        if len(replaced) == len(bad):
            break
    _settle_exercises(state, slot, ctx, bad, replaced, refused)


def _settle_exercises(
    state: CourseState,
    slot: LessonSlot,
    ctx: PipelineContext,
    bad: list[int],
    replaced: dict[int, ExerciseDraft],
    refused: list[str],
) -> None:
    """The new exercises into slot's draft when its exercise gates pass with them; a decision either way."""
    assert slot.draft is not None
    named = ", ".join(f"exercise {i + 1}" for i in bad)
    draft = slot.draft.model_copy(
        update={"exercises": [replaced.get(i, e) for i, e in enumerate(slot.draft.exercises)]}
    )
    results = _exercise_gates(draft, slot, ctx.settings, alone=False)
    failed = [r for g in results if not g.passed for r in g.reasons]
    if replaced and not failed:
        slot.draft = draft
        fresh = {g.gate: g for g in results}
        slot.gates = [fresh.get(g.gate, g) for g in slot.gates]
        kept = len(bad) - len(replaced)
        reason = f"{named} not answerable from the lesson: {len(replaced)} replaced by exercises asked alone"
        if kept:
            reason += f", {kept} kept (flagged after assembly)"
    else:
        why = failed or refused or ["no answer"]
        reason = f"{named} not answerable from the lesson; none replaced: {'; '.join(why)}"
    state.decisions.append(
        Decision(
            task=lesson_key(slot.id),
            action="regenerate",
            tier="",
            reason=reason[:500],
            inputs={"kind": "exercises", "replaced": sorted(i + 1 for i in replaced)},
        )
    )


async def answerable_exercises(state: CourseState, ctx: PipelineContext) -> None:
    """Phase 4's first step (see the module doc): every usable lesson's unanswerable exercises
    asked again, lessons side by side."""
    if not ctx.settings.gates.cross_artifact:
        return
    slots = [s for s in state.usable_slots() if s.draft is not None and s.draft.exercises]
    await asyncio.gather(*(_refresh_exercises(state, s, ctx) for s in slots))


async def run_quality(state: CourseState, ctx: PipelineContext) -> CourseState:
    await answerable_exercises(state, ctx)
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
