"""Phase 4: course-wide quality.

A lesson nearly identical to an earlier one is sent back whole, with the earlier one named
(lexical overlap or embedding cosine at the `gates.redundancy` thresholds). Then each lesson's
exercises that a learner could not use are asked again on their own — one short call given the
lesson's text, for just those exercises, the lesson kept: one whose answer its lesson does not
state (the cross-artifact "answerable" check, which used to flag them only after assembly), one
repeating another lesson's exercise (which used to send the whole lesson back), and one that
asks about "the following code" without quoting any. A new exercise replaces an old one only
when it is none of those and passes the exercise gates the old one had to pass. An exercise
still repeating another lesson's after that sends its lesson back whole, as before; one still
not answerable is flagged after assembly, as before."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Awaitable, Callable
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
from ..quality.redundancy import CourseLesson, course_duplicates, find_duplicates, owner_of
from .lessons import brief_of, exercises_request, generate_lessons
from .state import CourseState, LessonSlot, PipelineContext

__all__ = ["EXERCISE_ASKS", "cross_artifact_flags", "missing_code", "run_quality", "usable_exercises"]

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


#: A question about code it does not show ("What is the output of the following code?").
_CODE_REFERENCE = re.compile(
    r"\b(?:the following|this|the given|the code below)\s+(?:\w+\s+)?"
    r"(?:code|snippet|program|script|loop|function|statement|expression|lines?)\b",
    re.IGNORECASE,
)


def missing_code(question: str) -> bool:
    """Does `question` ask about code it does not quote (no code block or code span)? The
    offline model wrote "What is the output of the following code?" with no code in 4 of 30
    questions of session 4's python-basics demo, and in all three of one phase-4 rewrite."""
    return "`" not in question and bool(_CODE_REFERENCE.search(question))


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


def _others(state: CourseState, slot: LessonSlot, *, earlier_only: bool) -> list[tuple[str, str]]:
    """The exercise questions, (id, question), of every other usable lesson (`earlier_only`:
    of those before slot's in the course; of a repeated pair, the later one is asked again)."""
    out: list[tuple[str, str]] = []
    for s in state.usable_slots():
        if s.id == slot.id:
            if earlier_only:
                break
            continue
        if s.draft is not None:
            out += [(f"{s.id}-E{k + 1}", e.question) for k, e in enumerate(s.draft.exercises)]
    return out


async def _repeats(
    ctx: PipelineContext, others: list[tuple[str, str]], questions: list[str]
) -> dict[int, str]:
    """Index -> the other lesson's exercise id, for each of `questions` repeating one of
    `others` at the exercise thresholds of `gates.redundancy`."""
    if not others or not questions or not ctx.settings.gates.redundancy.enabled:
        return {}
    embedder, settings = ctx.embedder(), ctx.settings.gates.redundancy
    mine = [(f"new-{k}", q) for k, q in enumerate(questions)]
    items = [*others, *mine]
    found = find_duplicates(
        items,
        await embedder.embed([q for _, q in items]),
        cosine_at=settings.exercise_cosine.get(embedder.name, 0.95),
        lexical_at=settings.exercise_lexical,
        kind="exercise",
        later=range(len(others), len(items)),
    )
    return {
        int(d.later[4:]): d.earlier
        for d in found
        if d.later.startswith("new-") and not d.earlier.startswith("new-")
    }


async def _bad_exercises(
    state: CourseState,
    slot: LessonSlot,
    ctx: PipelineContext,
    exercises: list[ExerciseDraft],
    *,
    new: bool = False,
) -> dict[int, str]:
    """Index -> why, for each of `exercises` (of slot's lesson) a learner could not use: its
    answer not stated in the lesson, a question about code it does not quote, or a repeat of an
    earlier lesson's exercise (`new` exercises: of any other lesson's)."""
    why = {i: "its answer is not stated in the lesson" for i in await _unanswerable_in(slot, ctx, exercises)}
    for i, e in enumerate(exercises):
        if i not in why and missing_code(e.question):
            why[i] = "it asks about code it does not quote"
    others = _others(state, slot, earlier_only=not new)
    repeats = await _repeats(ctx, others, [e.question for e in exercises])
    for i, other in repeats.items():
        why.setdefault(i, f"it repeats exercise {other} of another lesson")
    return why


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


def _ask_feedback(old: list[ExerciseDraft], bad: dict[int, str], todo: list[int], refused: list[str]) -> str:
    kept = [e.question for k, e in enumerate(old) if k not in todo]
    text = (
        f"Write only {len(todo)} new exercise(s), each about a point the lesson states, its answer "
        "in the lesson's own words. The lesson's exercise(s) "
        + "; ".join(f"{old[i].question!r} ({bad[i]})" for i in todo)
        + " cannot be used."
    )
    if kept:
        text += " The lesson keeps " + "; ".join(repr(q) for q in kept) + ": ask about something else."
    if refused:
        text += " Not usable either: " + "; ".join(refused) + "."
    return text


async def _refresh_exercises(state: CourseState, slot: LessonSlot, ctx: PipelineContext) -> None:
    """Slot's exercises a learner could not use (`_bad_exercises`), asked again alone
    (`EXERCISE_ASKS` calls at most); each replaced by a new one that has none of those faults and
    passes the exercise gates, the lesson as a whole kept only if its exercise gates still pass."""
    assert slot.draft is not None
    old = list(slot.draft.exercises)
    bad = await _bad_exercises(state, slot, ctx, old)
    if not bad:
        return
    replaced: dict[int, ExerciseDraft] = {}
    refused: list[str] = []
    for attempt in range(1, EXERCISE_ASKS + 1):
        todo = [i for i in sorted(bad) if i not in replaced]
        try:
            fresh, why = await _ask_exercises(
                state, slot, ctx, todo, attempt, _ask_feedback(old, bad, todo, refused)
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
        faults = await _bad_exercises(state, slot, ctx, fresh, new=True)
        for k, (i, exercise) in enumerate(zip(todo, fresh, strict=False)):
            alone = LessonDraft.model_construct(
                content=slot.draft.content, exercises=[exercise], citations=[]
            )
            problems = [r for g in _exercise_gates(alone, slot, ctx.settings, alone=True) for r in g.reasons]
            if k in faults:
                problems.append(faults[k])
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
    bad: dict[int, str],
    replaced: dict[int, ExerciseDraft],
    refused: list[str],
) -> None:
    """The new exercises into slot's draft when its exercise gates pass with them; a decision either way."""
    assert slot.draft is not None
    named = ", ".join(f"exercise {i + 1} ({why})" for i, why in sorted(bad.items()))
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
        reason = f"{named}: {len(replaced)} replaced by exercises asked alone"
        if kept:
            reason += f", {kept} kept"
    else:
        why = failed or refused or ["no answer"]
        reason = f"{named}: none replaced: {'; '.join(why)}"
    state.decisions.append(
        Decision(
            task=lesson_key(slot.id),
            action="regenerate",
            tier="",
            reason=reason[:500],
            inputs={"kind": "exercises", "replaced": sorted(i + 1 for i in replaced)},
        )
    )


async def usable_exercises(state: CourseState, ctx: PipelineContext) -> None:
    """Phase 4's exercise step (see the module doc): every usable lesson's exercises a learner
    could not use, asked again alone, lessons side by side."""
    if not ctx.settings.gates.cross_artifact and not ctx.settings.gates.redundancy.enabled:
        return
    slots = [s for s in state.usable_slots() if s.draft is not None and s.draft.exercises]
    await asyncio.gather(*(_refresh_exercises(state, s, ctx) for s in slots))


async def _answer_support_ahead(state: CourseState, ctx: PipelineContext, resent: set[str]) -> None:
    """Embed, ahead of `usable_exercises`, what it will embed for the lessons not in `resent`
    (their sentence windows and their exercises' answer statements), so that the model works
    while phase 4's rewrites are at the provider instead of after they return. The same texts
    through the same calls: the verdicts are computed later, as before, from the vectors this
    leaves in the embedder's cache and grounding's window memo."""
    if not ctx.settings.gates.cross_artifact and not ctx.settings.gates.redundancy.enabled:
        return
    slots = [
        s for s in state.usable_slots() if s.id not in resent and s.draft is not None and s.draft.exercises
    ]
    # Never fails the rewrite it runs beside: `usable_exercises` embeds anything missing again
    # and reports an embedder's failure itself.
    with contextlib.suppress(Exception):
        await asyncio.gather(*(_unanswerable_in(s, ctx, list(s.draft.exercises)) for s in slots if s.draft))


async def _send_back(
    state: CourseState,
    ctx: PipelineContext,
    kinds: tuple[str, ...],
    skip: set[str],
    *,
    beside: Callable[[set[str]], Awaitable[None]] | None = None,
) -> set[str]:
    """The later lesson of each duplicate pair of `kinds` (but those in `skip`) written again
    whole, told which earlier one it repeated; the ids sent back. `beside(ids)` runs while they
    are written (when one is)."""
    slots = state.usable_slots()
    if len(slots) < 2 or not ctx.settings.gates.redundancy.enabled:
        return set()
    by_id = {s.id: s for s in slots}
    resend: list[LessonSlot] = []
    lessons = [
        CourseLesson(s.id, s.draft.content, [e.question for e in s.draft.exercises]) for s in slots if s.draft
    ]
    for dup in await course_duplicates(lessons, ctx.embedder(), ctx.settings.gates.redundancy):
        later = by_id[owner_of(dup.later)]
        if dup.kind not in kinds or later in resend or later.id in skip:
            continue
        earlier = by_id[owner_of(dup.earlier)]
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
    ids = {s.id for s in resend}
    if resend:
        rewrite = generate_lessons(state, ctx, resend, "quality")
        await (asyncio.gather(rewrite, beside(ids)) if beside is not None else rewrite)
    return ids


async def run_quality(state: CourseState, ctx: PipelineContext) -> CourseState:
    # The kept lessons' exercise checks embed while the repeated lessons are rewritten.
    sent = await _send_back(
        state, ctx, ("lesson",), set(), beside=lambda ids: _answer_support_ahead(state, ctx, ids)
    )
    await usable_exercises(state, ctx)
    # An exercise the asks could not make distinct: its lesson written again, as before.
    await _send_back(state, ctx, ("exercise",), sent)
    return state
