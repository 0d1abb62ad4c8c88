"""Phase 3: every lesson generated concurrently through the cascade.

The shared context (outcomes, structure, style) is built once in phase 2; here each lesson is
one task: pre-routed to a starting tier, then run up the attempt ladder with its gates as the
check. A failing lesson never sinks the others: its slot is marked failed and phase 5 decides.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..config import Settings
from ..config.settings import PrioritySettings
from ..domain import AnalysisResult, Decision, LearningOutcome, ReviewFlag
from ..domain.analysis import SectionSpec
from ..domain.drafts import LessonDraft, json_schema_of
from ..domain.tasks import TaskId, lesson_key, outcome_number
from ..errors import BadResponse, BudgetExceeded, JobStopped, ModerationRefused, ProviderError
from ..providers import ChatRequest, Message, ProseFirst
from ..providers.effects import CallResult, CallSpec
from ..routing import (
    BLOOM_RANK,
    Route,
    TaskProfile,
    TaskResult,
    Verdict,
    estimate_complexity,
    route_task,
    run_cascade,
    tier_rank,
)
from ..telemetry import SpanHandle, span
from .context import fit_context, lesson_excerpts, request_tokens
from .lesson_checks import borderline_accepted, check_lesson, draw_samples, is_sampled
from .parsing import parser_for
from .prompts import lesson_exercises_ask, lesson_messages
from .state import CourseState, LessonSlot, PipelineContext, ProgressEvent

__all__ = [
    "LESSON_MAX_TOKENS",
    "LessonBrief",
    "brief_of",
    "create_slots",
    "generate_lesson",
    "generate_lessons",
    "lesson_request",
    "lesson_schema",
    "lesson_schema_for",
    "run_lessons",
]

#: The output bound of a lesson request (below the tier model's own `max_output_tokens`).
LESSON_MAX_TOKENS = 1800
#: Characters per word (spaces included) used to turn the configured word range into the
#: schema's string bounds so that the bounds imply the range for ordinary prose (English averages
#: ~6): at least 7 per word for the minimum, at most 5 per word for the maximum. A grammar-
#: constrained model then cannot leave the range the length gate checks.
_CHARS_PER_WORD_MIN, _CHARS_PER_WORD_MAX = 7, 5


@functools.lru_cache(maxsize=8)
def lesson_schema(
    min_words: int,
    max_words: int,
    max_exercises: int = 4,
    min_exercises: int = 1,
    *,
    bound_content: bool = True,
) -> dict[str, Any]:
    """The lesson schema with `content` bounded by the configured word range, so a grammar-
    constrained model physically cannot run long, and a hosted one is told the same bounds.
    `bound_content=False` (prose-first lessons, whose markdown no grammar bounds): the draft's
    own character bounds, the word range being the length gate's to judge, not a parse error's."""
    schema = json_schema_of(LessonDraft)
    content = schema["properties"]["content"]
    if bound_content:
        content["minLength"] = max(content["minLength"], min_words * _CHARS_PER_WORD_MIN)
        content["maxLength"] = max(
            content["minLength"] + 1, min(content["maxLength"], max_words * _CHARS_PER_WORD_MAX)
        )
    exercises = schema["properties"]["exercises"]
    exercises["maxItems"] = max(exercises["minItems"], min(exercises["maxItems"], max_exercises))
    exercises["minItems"] = min(exercises["maxItems"], max(exercises["minItems"], min_exercises))
    return schema


def lesson_schema_for(
    base: dict[str, Any], outcome_numbers: list[int], source_ids: list[str]
) -> dict[str, Any]:
    """`base` narrowed to one lesson: an exercise may only name an outcome this lesson teaches,
    and citations may only name the input's source ids (none without sources). Constraints the
    schema can carry are enforced by the model's structured output (and by a local grammar)
    instead of being discovered by a gate after a paid call. Only the changed paths are copied:
    the rest is shared with `base`, so neither may be mutated."""
    props = base["properties"]
    exercises = props["exercises"]
    items = exercises["items"]
    outcome = {"type": "integer", "enum": sorted(set(outcome_numbers))}
    citations = dict(props["citations"])
    if source_ids:
        citations["items"] = {"type": "string", "enum": list(source_ids)}
        citations["maxItems"] = min(citations.get("maxItems", len(source_ids)), len(source_ids))
    else:
        citations["maxItems"] = 0
    narrowed_items = {**items, "properties": {**items["properties"], "outcome": outcome}}
    return {
        **base,
        "properties": {**props, "exercises": {**exercises, "items": narrowed_items}, "citations": citations},
    }


#: A grammar-bound exercise explanation's bound: one sentence (the schema's own bound is 300).
EXPLANATION_MAX_CHARS = 180


def exercises_by_type(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` (a lesson schema) with each exercise's shape fixed by its type, for a model whose
    output a grammar binds: a true_false answer is `true` or `false` and has no options, a
    multiple_choice has 3-5 options, the other types have none. The exercise gate refuses what
    this rules out, and the offline model wrote it often: 5 of the 12 rejected lesson answers of
    issue 25's second python-basics run had true_false answers written as sentences (each a
    whole regeneration). An explanation is one sentence (`EXPLANATION_MAX_CHARS`), as the
    prompt asks. Only the exercise items are copied; the rest is shared with `schema`."""
    props = schema["properties"]
    exercises = props["exercises"]
    fields = exercises["items"]["properties"]
    option = fields["options"]["anyOf"][0]["items"]
    explanation = {**fields["explanation"], "maxLength": EXPLANATION_MAX_CHARS}

    def variant(types: list[str], options: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
        shape = {
            **fields,
            "type": {"type": "string", "enum": types},
            "options": options,
            "answer": answer,
            "explanation": explanation,
        }
        return {**exercises["items"], "properties": shape}

    items = {
        "anyOf": [
            variant(
                ["multiple_choice"],
                {"type": "array", "items": option, "minItems": 3, "maxItems": 5},
                fields["answer"],
            ),
            variant(["true_false"], {"type": "null"}, {"type": "string", "enum": ["true", "false"]}),
            variant(["short_answer", "coding", "open"], {"type": "null"}, fields["answer"]),
        ]
    }
    return {**schema, "properties": {**props, "exercises": {**exercises, "items": items}}}


#: Output tokens per word of lesson markdown (code blocks and headings included; measured ~1.4
#: on the offline model's lessons), with room for the words' upper bound.
_PROSE_TOKENS_PER_WORD = 2.0
#: Lines a model starts exercises with when it writes them into the prose anyway.
_EXERCISE_HEADINGS = ("\n## Exercises", "\n### Exercises", "\n**Exercises", "\n## Practice", "\n### Practice")


def _prose_first(
    outcomes: list[int],
    exercises: tuple[int, int],
    source_ids: list[str],
    words: tuple[int, int],
    max_tokens: int,
) -> ProseFirst:
    """A lesson asked prose first: the markdown free, then its exercises as JSON (local models)."""
    return ProseFirst(
        follow_up=lesson_exercises_ask(outcomes, exercises, bool(source_ids)),
        stop=_EXERCISE_HEADINGS,
        max_prose_tokens=min(int(words[1] * _PROSE_TOKENS_PER_WORD), max_tokens * 2 // 3),
    )


def create_slots(state: CourseState) -> None:
    for si, plan in enumerate(state.plans):
        for lp in plan.lessons:
            numbers = [outcome_number(o) for o in lp.outcome_ids]
            state.slots[lp.id] = LessonSlot(
                id=lp.id, section_index=si, title=lp.title, outcome_numbers=numbers
            )


@dataclass(frozen=True, slots=True)
class LessonBrief:
    """What one lesson's request is made of: its place in the course and what it must teach.
    Generation builds it from the course state (`brief_of`); `export-training` from a stored
    course, to rebuild the first attempt's request."""

    analysis: AnalysisResult
    course_title: str
    section: SectionSpec
    section_summary: str
    lesson_title: str
    #: (number, outcome) of each outcome the lesson teaches.
    outcomes: Sequence[tuple[int, LearningOutcome]]
    sibling_titles: Sequence[str]
    style: str
    outline: Sequence[tuple[str, Sequence[str]]]
    #: The (id, title, excerpt) passages shown (None: the first sources' openings).
    sources: Sequence[tuple[str, str, str]] | None
    #: The outcome numbers its exercises may name (the schema's); default: `outcomes`' numbers.
    outcome_numbers: Sequence[int] | None = None
    #: Every outcome of the course and each section's summary: the long shared prefix a
    #: provider's prompt cache keeps (sent to models with `prompt_cache_min_tokens`).
    course_outcomes: Sequence[tuple[int, LearningOutcome]] = ()
    section_summaries: Sequence[str] = ()
    #: Bank questions the lesson reuses (`pipeline/bank.py`): its model is asked for that many
    #: fewer exercises (never fewer than one).
    reused: int = 0

    def exercises(self, settings: Settings) -> tuple[int, int]:
        """(min, max) exercises to ask the model for."""
        gates = settings.gates
        asked = max(1, gates.max_exercises - self.reused)
        return min(gates.min_exercises, asked), asked

    def messages(
        self, settings: Settings, feedback: str = "", *, cache_prefix: bool = False, prose_first: bool = False
    ) -> list[Message]:
        """`cache_prefix`: the long shared prefix (course outcomes, section summaries, rubric).
        `prose_first`: the lesson asked as markdown, its exercises after it (`ProseFirst`)."""
        gates = settings.gates
        return lesson_messages(
            analysis=self.analysis,
            course_title=self.course_title,
            section=self.section,
            section_summary=self.section_summary,
            lesson_title=self.lesson_title,
            outcomes=self.outcomes,
            sibling_titles=self.sibling_titles,
            words=(gates.lesson_min_words, gates.lesson_max_words),
            style=self.style,
            outline=self.outline,
            feedback=feedback,
            exercises=self.exercises(settings),
            sources=self.sources,
            course_outcomes=self.course_outcomes if cache_prefix else (),
            summaries=self.section_summaries if cache_prefix else (),
            prose_first=prose_first,
        )


def lesson_request(
    brief: LessonBrief,
    settings: Settings,
    tier: str,
    *,
    feedback: str = "",
    timeout_s: float | None = None,
    tags: Mapping[str, str] | None = None,
) -> ChatRequest:
    """The request of one attempt at a lesson on `tier`: its prompt (with the attempt's
    `feedback`), the lesson schema narrowed to its outcomes and the input's sources, the output
    bound of the tier's model. A local model with `prose_first` is asked for the markdown first
    and the exercises after it (`ProseFirst`); its answer is the same JSON lesson."""
    gates = settings.gates
    model = settings.models[settings.routing.tiers[tier]]
    numbers = brief.outcome_numbers if brief.outcome_numbers is not None else [n for n, _ in brief.outcomes]
    cache_prefix = model.prompt_cache != "off" and model.prompt_cache_min_tokens > 0
    prose_first = model.local is not None and model.local.prose_first
    source_ids = [m.id for m in brief.analysis.source_material]
    words = (gates.lesson_min_words, gates.lesson_max_words)
    asked = brief.exercises(settings)
    max_tokens = min(model.max_output_tokens, LESSON_MAX_TOKENS)
    schema = lesson_schema_for(
        lesson_schema(*words, asked[1], asked[0], bound_content=not prose_first), list(numbers), source_ids
    )
    return ChatRequest(
        brief.messages(settings, feedback, cache_prefix=cache_prefix, prose_first=prose_first),
        json_schema=exercises_by_type(schema) if prose_first else schema,
        schema_name="lesson",
        max_tokens=max_tokens,
        temperature=settings.routing.temperature,
        timeout_s=timeout_s,
        tags=dict(tags or {}),
        prose_first=_prose_first(list(numbers), asked, source_ids, words, max_tokens)
        if prose_first
        else None,
    )


def brief_of(state: CourseState, slot: LessonSlot, excerpts: Sequence[tuple[str, str, str]]) -> LessonBrief:
    """Slot `slot`'s brief from the course state (phase 2's plan, outcomes and style)."""
    analysis = state.analysis
    plan = state.plans[slot.section_index]
    return LessonBrief(
        analysis=analysis,
        course_title=state.core.course_title if state.core else analysis.topic,
        section=analysis.sections[slot.section_index],
        section_summary=plan.summary,
        lesson_title=slot.title,
        outcomes=[(n, state.outcomes[n - 1]) for n in slot.outcome_numbers],
        sibling_titles=[s.title for s in state.slots_in(slot.section_index) if s.id != slot.id],
        style=state.extras.style_guidelines if state.extras else "",
        outline=[(p.title, [lp.title for lp in p.lessons]) for p in state.plans],
        sources=excerpts,
        outcome_numbers=slot.outcome_numbers,
        course_outcomes=list(enumerate(state.outcomes, start=1)),
        section_summaries=[p.summary for p in state.plans],
        reused=len(state.bank.get(slot.id, ())),
    )


async def generate_lesson(
    state: CourseState,
    slot: LessonSlot,
    ctx: PipelineContext,
    sem: asyncio.Semaphore,
    phase: str,
    round: int = 0,
    *,
    sequential: bool = False,
) -> None:
    """Generate one slot through the cascade (`phase`/`round`: where it runs, for the report);
    the slot ends accepted, flagged (best attempt kept) or failed. Never raises an `Exception`
    (a provider error, an embedder crash, a bug in a gate): that lesson fails, the course goes on.
    `sequential`: the fallback run after a failed parallel one, with the priority's longer
    timeout (`routing.sequential_timeout_factor` times its `timeout_s`)."""
    assert state.core is not None and state.extras is not None
    spec = state.analysis.sections[slot.section_index]
    task = TaskId.lesson_task(slot.id, round=0 if slot.task_tag else slot.rounds, tag=slot.task_tag)
    priority_name, priority = ctx.priority_for(spec.section_type, spec.critical)
    # The sources' passages relevant to this lesson: shown to it, and graded against.
    brief = brief_of(state, slot, await lesson_excerpts(state, slot, ctx))
    timeout_s = priority.timeout_s
    if sequential and timeout_s is not None:
        timeout_s *= ctx.settings.routing.sequential_timeout_factor
    tags = {"phase": phase, "task": task.key(), "max_retries": str(priority.retries)}

    def build(tier: str, attempt: int, feedback: str) -> ChatRequest:
        note = " ".join(x for x in (slot.feedback, feedback) if x)
        return lesson_request(brief, ctx.settings, tier, feedback=note, timeout_s=timeout_s, tags=tags)

    route, start_tier = _start_tier(state, slot, ctx, brief, task, (priority_name, priority), round, build)
    attempts = _Attempts(state, slot, ctx, task, [(n, o.text) for n, o in brief.outcomes])
    sampled = is_sampled(ctx, spec.section_type, spec.critical)
    async with sem:
        with span(
            "task lesson", _task_attributes(task.key(), phase, route, priority_name, start_tier)
        ) as attempts.task_span:
            try:
                result = await run_cascade(
                    phase=phase,
                    round=round,
                    task=task,
                    start_tier=start_tier,
                    policy=ctx.policy(priority, step_down_on_budget=True),
                    build=build,
                    parse=parser_for(LessonDraft),
                    check=attempts.check,
                    call=attempts.sampling_call if sampled else ctx.effects.call,
                )
            except JobStopped:
                raise  # the provider stopped the whole job (401, 402): not one lesson's failure
            except Exception as exc:  # isolation: one lesson's failure is recorded, never raised
                slot.status, slot.reason = "failed", f"{type(exc).__name__}: {exc}"[:500]
                slot.transient_failure = True
                attempts.task_span.error(type(exc).__name__, str(exc))
                state.decisions.append(
                    Decision(task=task.key(), action="fail", tier=start_tier, reason=slot.reason)
                )
                return
            _trace_result(attempts.task_span, result.decisions, result.status, result.tier, result.attempts)
    _settle(state, slot, ctx, task, result)


def _start_tier(
    state: CourseState,
    slot: LessonSlot,
    ctx: PipelineContext,
    brief: LessonBrief,
    task: TaskId,
    priority: tuple[str, PrioritySettings],
    round: int,
    build: Callable[[str, int, str], ChatRequest],
) -> tuple[Route, str]:
    """Where the lesson's first attempt goes, each move recorded as a decision: pre-routed by
    its profile, raised to the slot's floor after a failed round, capped near the budget cap,
    moved to the long-context tier when its prompt does not fit."""
    spec = brief.section
    analysis = state.analysis
    settings = ctx.settings
    probe = build(settings.routing.ladder[0], 1, "")
    profile = TaskProfile(
        task=task.key(),
        complexity=spec.complexity
        or estimate_complexity(spec.key_concepts, analysis.difficulty, spec.guidance),
        critical=spec.critical,
        section_type=spec.section_type,
        bloom_rank=max(BLOOM_RANK[o.bloom_level] for _, o in brief.outcomes),
        context_tokens=request_tokens(probe.messages, probe.max_tokens),
    )
    route = route_task(profile, settings.routing, settings.models)
    start_tier = route.tier
    priority_name, settings_of_priority = priority
    ceiling = ctx.policy(settings_of_priority)().ceiling
    ladder = settings.routing.ladder
    state.decisions.append(
        Decision(
            task=task.key(),
            action="route",
            tier=route.tier,
            reason=route.reason,
            inputs={**route.inputs, "priority": priority_name},
        )
    )
    if slot.floor_tier and tier_rank(ladder, start_tier) < tier_rank(ladder, slot.floor_tier):
        state.decisions.append(
            Decision(
                task=task.key(),
                action="escalate",
                tier=slot.floor_tier,
                reason=slot.floor_reason
                or f"its generation from {slot.round_start_tier} failed: starting a tier higher",
                inputs={"from_tier": start_tier, "round": round},
            )
        )
        start_tier = slot.floor_tier
    if ceiling and start_tier in ladder and ladder.index(start_tier) > ladder.index(ceiling):
        # Near the budget cap new tasks start no higher than the step-down tier.
        state.decisions.append(
            Decision(
                task=task.key(),
                action="step_down",
                tier=ceiling,
                reason=f"budget {ctx.effects.budget_fraction():.0%} used: {start_tier} capped at {ceiling}",
            )
        )
        start_tier = ceiling
    # A prompt too large for the starting tier goes to the long-context tier.
    probe = build(start_tier, 1, "")
    start_tier, moved = fit_context(ctx, start_tier, probe.messages, probe.max_tokens, task.key())
    if moved is not None:
        state.decisions.append(moved)
    if not slot.start_tier:
        slot.start_tier = start_tier
    slot.round_start_tier = start_tier
    return route, start_tier


class _Attempts:
    """One lesson task's attempts: the call (with self-consistency samples on a sampled tier,
    whose agreement travels with the chosen draft to its check) and the check (the lesson's
    gates, inside its span, the verdict traced on the task's span)."""

    def __init__(
        self,
        state: CourseState,
        slot: LessonSlot,
        ctx: PipelineContext,
        task: TaskId,
        outcomes: list[tuple[int, str]],
    ) -> None:
        self.state, self.slot, self.ctx, self.task, self.outcomes = state, slot, ctx, task, outcomes
        self.agreement: float | None = None
        self.task_span = SpanHandle()

    async def sampling_call(self, attempt: CallSpec) -> CallResult:
        self.agreement = None
        cs = self.ctx.settings.gates.consistency
        if attempt.tier not in cs.tiers:
            return await self.ctx.effects.call(attempt)
        outcome_texts = {self.state.outcome_id(n): text for n, text in self.outcomes}
        result, self.agreement = await draw_samples(
            self.ctx.effects.call, attempt, samples=cs.samples, ctx=self.ctx, outcomes=outcome_texts
        )
        return result

    async def check(self, draft: LessonDraft, attempt: CallSpec) -> Verdict:
        with span(
            "check lesson", {"courseforge.task": self.task.key(), "courseforge.attempt": attempt.attempt}
        ) as s:
            verdict = await check_lesson(
                self.state, self.slot, draft, self.ctx, attempt, consistency=self.agreement
            )
            _trace_verdict(s, self.task_span, attempt, verdict)
        return verdict


def _settle(
    state: CourseState, slot: LessonSlot, ctx: PipelineContext, task: TaskId, result: TaskResult[LessonDraft]
) -> None:
    """The cascade's outcome on the slot: failed (transient or not), accepted or flagged."""
    state.decisions += result.decisions
    slot.attempts += result.attempts
    refused = result.errors and all(isinstance(e, BudgetExceeded) for e in result.errors)
    if result.value is None and slot.draft is not None and refused:
        # A regeneration (phase 4) the budget refused outright: the earlier draft (its tier and
        # model) stands, flagged for a person.
        slot.status = "flagged"
        slot.reason = f"regeneration refused by the budget, earlier draft kept: {result.reason}"[:500]
        state.decisions.append(Decision(task=task.key(), action="flag", tier=slot.tier, reason=slot.reason))
        return
    slot.tier, slot.model, slot.reason = result.tier, result.model, result.reason
    if result.value is None:
        slot.status = "failed"
        refusals = [e for e in result.errors if isinstance(e, ModerationRefused)]
        if refusals and all(isinstance(e, ModerationRefused) for e in result.errors):
            # Every model's moderation refused the prompt: a person decides (OpenRouter 403).
            reasons = sorted({r for e in refusals for r in e.reasons}) or ["no reason given"]
            slot.reason = (
                f"every model refused its prompt (moderation: {', '.join(reasons)}): {refusals[-1]}"[:500]
            )
            state.flags.append(ReviewFlag(target=lesson_key(slot.id), reason=slot.reason, gate="moderation"))
        # A model that answered badly (or a refusal) would answer so again: only transport
        # failures are worth the sequential fallback.
        slot.transient_failure = any(
            isinstance(e, ProviderError) and e.retryable and not isinstance(e, BadResponse)
            for e in result.errors
        )
        return
    slot.transient_failure = False
    slot.draft = result.value
    slot.gates = list(result.verdict.details) if result.verdict and result.verdict.details else []
    slot.status = "accepted" if result.status == "accepted" else "flagged"
    slot.feedback = ""
    if (
        slot.status == "accepted"
        and ctx.settings.gates.judge.flag_borderline
        and borderline_accepted(slot.gates)
    ):
        # A borderline similarity the judge accepted proceeds, with a flag for a person.
        slot.status = "flagged"
        slot.reason = "borderline similarity accepted by the judge: proceeds with a flag (seed 001)"
        state.decisions.append(Decision(task=task.key(), action="flag", tier=result.tier, reason=slot.reason))


def _task_attributes(
    task: str, phase: str, route: Route, priority: str, start_tier: str
) -> dict[str, str | float | bool | None]:
    """A lesson task's span: its routing decision (score, reason, priority, starting tier)."""
    return {
        "courseforge.task": task,
        "courseforge.phase": phase,
        "courseforge.routing.tier": route.tier,
        "courseforge.routing.reason": route.reason,
        "courseforge.routing.score": route.score,
        "courseforge.routing.priority": priority,
        "courseforge.start_tier": start_tier,
    }


def _trace_verdict(
    check_span: SpanHandle, task_span: SpanHandle, attempt: CallSpec, verdict: Verdict
) -> None:
    """An attempt's gate verdict on its check span, and as an event of its task's span."""
    if not (check_span.recording or task_span.recording):
        return
    failed = [g.gate for g in verdict.details or () if not g.passed]
    attributes: dict[str, str | bool | int | float | list[str] | None] = {
        "courseforge.attempt": attempt.attempt,
        "courseforge.tier": attempt.tier,
        "courseforge.gate.passed": verdict.passed,
        "courseforge.gate.score": verdict.score,
        "courseforge.gate.severe": verdict.severe,
        "courseforge.gate.failed": failed,
    }
    check_span.set(attributes)
    task_span.event("gate verdict", attributes)


def _trace_result(
    task_span: SpanHandle, decisions: list[Decision], status: str, tier: str, attempts: int
) -> None:
    if not task_span.recording:
        return
    for d in decisions:
        task_span.event(
            "decision",
            {
                "courseforge.decision.action": d.action,
                "courseforge.decision.tier": d.tier,
                "courseforge.decision.reason": d.reason[:300],
            },
        )
    task_span.set(
        {"courseforge.status": status, "courseforge.final_tier": tier, "courseforge.attempts": attempts}
    )


async def generate_lessons(
    state: CourseState, ctx: PipelineContext, slots: list[LessonSlot], phase: str, round: int = 0
) -> None:
    """`slots` generated concurrently; those whose parallel run failed for a transient reason (a
    timeout, a dropped connection, a rate limit, an exception) are then retried one at a time
    with the longer timeout (a section that failed in parallel falls back to sequential)
    before phase 5 sees them failed. A lesson the model answered badly is not: repeating those
    calls would pay for the same failure again (phase 5 regenerates it a tier higher)."""
    sem = asyncio.Semaphore(ctx.settings.routing.max_parallel_tasks)
    total, done = len(slots), 0

    async def one(slot: LessonSlot, lock: asyncio.Semaphore, sequential: bool = False) -> None:
        nonlocal done
        started = ctx.effects.now_ms()
        attempts = slot.attempts
        await generate_lesson(state, slot, ctx, lock, phase, round, sequential=sequential)
        done += 1
        took = (ctx.effects.now_ms() - started) / 1000
        tried = slot.attempts - attempts
        where = f"{slot.tier}, " if slot.tier else ""
        how = "sequential fallback: " if sequential else ""
        message = (
            f"{how}{slot.id} {slot.status} ({where}{tried} attempt{'s' if tried != 1 else ''}, {took:.1f} s)"
        )
        ctx.progress(ProgressEvent(phase, "task_done", message, slot.id, done, total))

    tasks = [asyncio.ensure_future(one(s, sem)) for s in slots]
    try:
        await asyncio.gather(*tasks)
    except JobStopped:
        # The provider stopped the job (401, 402): the other lessons stop too (their calls in
        # flight are recorded cancelled), so the report holds every call the course made.
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    failed = [s for s in slots if s.status == "failed" and s.transient_failure]
    if not failed or not ctx.settings.routing.sequential_fallback:
        return
    total += len(failed)
    alone = asyncio.Semaphore(1)
    for slot in failed:
        # A new round of its own (new step keys): the failed calls are not replayed as failures.
        slot.rounds += 1
        state.decisions.append(
            Decision(
                task=lesson_key(slot.id),
                action="sequential_fallback",
                tier="",
                reason=f"parallel run failed ({slot.reason or 'no usable draft'}): retried alone "
                f"with {ctx.settings.routing.sequential_timeout_factor:g}x the priority's timeout",
                inputs={"phase": phase, "round": round},
            )
        )
        await one(slot, alone, sequential=True)


async def run_lessons(state: CourseState, ctx: PipelineContext) -> CourseState:
    """Phase 3: every planned lesson (`create_slots` made the slots from phase 2's plan)."""
    await generate_lessons(state, ctx, list(state.slots.values()), "lessons")
    return state
