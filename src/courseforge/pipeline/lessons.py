"""Phase 3: every lesson generated concurrently through the cascade.

The shared context (outcomes, structure, style) is built once in phase 2; here each lesson is
one task: pre-routed to a starting tier, then run up the attempt ladder with its gates as the
check. A failing lesson never sinks the others: its slot is marked failed and phase 5 decides.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
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
from ..quality.base import GateResult
from ..routing import (
    BLOOM_RANK,
    Policy,
    Route,
    TaskProfile,
    TaskResult,
    Verdict,
    estimate_complexity,
    next_tier,
    route_task,
    run_cascade,
    tier_rank,
)
from ..telemetry import SpanHandle, span
from .context import fit_context, lesson_excerpts, request_tokens
from .lesson_checks import borderline_accepted, check_lesson, draw_samples, is_sampled
from .parsing import parser_for
from .prompts import (
    exercises_messages,
    lesson_exercises_ask,
    lesson_extend_ask,
    lesson_group_messages,
    lesson_messages,
    worked_example_kind,
)
from .state import CourseState, LessonSlot, PipelineContext, ProgressEvent

__all__ = [
    "LESSON_MAX_TOKENS",
    "LessonBrief",
    "brief_of",
    "create_slots",
    "exercises_request",
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


_CITATIONS_ASK = (
    "Now list in `citations`, as JSON, the ids of the sources the lesson used (none: an empty list)."
)


def _prose_first(
    outcomes: list[int],
    exercises: tuple[int, int],
    source_ids: list[str],
    words: tuple[int, int],
    max_tokens: int,
    *,
    exercises_apart: bool = False,
    example: str = "",
) -> ProseFirst:
    """A lesson asked prose first: the markdown free, then its exercises as JSON (local models);
    with `exercises_apart` only its citations (the exercises are a call of their own). Markdown
    under the word floor is asked for one more worked example (`example`: its kind) first."""
    return ProseFirst(
        follow_up=_CITATIONS_ASK
        if exercises_apart
        else lesson_exercises_ask(outcomes, exercises, bool(source_ids)),
        stop=_EXERCISE_HEADINGS,
        max_prose_tokens=min(int(words[1] * _PROSE_TOKENS_PER_WORD), max_tokens * 2 // 3),
        min_words=words[0] if example else 0,
        extend=lesson_extend_ask(words, example) if example else "",
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
        self,
        settings: Settings,
        feedback: str = "",
        *,
        cache_prefix: bool = False,
        prose_first: bool = False,
        exercises_apart: bool = False,
    ) -> list[Message]:
        """`cache_prefix`: the long shared prefix (course outcomes, section summaries, rubric).
        `prose_first`: the lesson asked as markdown, its exercises after it (`ProseFirst`).
        `exercises_apart`: the lesson without exercises (`exercises_request` asks for them)."""
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
            exercises_apart=exercises_apart,
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
    and the exercises after it (`ProseFirst`); its answer is the same JSON lesson. With
    `routing.exercises_tier` the lesson is asked without exercises (`exercises_request`)."""
    gates = settings.gates
    model = settings.models[settings.routing.tiers[tier]]
    numbers = brief.outcome_numbers if brief.outcome_numbers is not None else [n for n, _ in brief.outcomes]
    cache_prefix = model.prompt_cache != "off" and model.prompt_cache_min_tokens > 0
    prose_first = model.local is not None and model.local.prose_first
    source_ids = [m.id for m in brief.analysis.source_material]
    words = (gates.lesson_min_words, gates.lesson_max_words)
    asked = brief.exercises(settings)
    max_tokens = min(model.max_output_tokens, LESSON_MAX_TOKENS)
    apart = settings.routing.exercises_tier is not None
    schema = lesson_schema_for(
        lesson_schema(*words, asked[1], asked[0], bound_content=not prose_first), list(numbers), source_ids
    )
    if apart:
        props = {k: v for k, v in schema["properties"].items() if k != "exercises"}
        schema = {**schema, "properties": props, "required": [k for k in schema["required"] if k in props]}
    elif prose_first:
        schema = exercises_by_type(schema)
    return ChatRequest(
        brief.messages(
            settings, feedback, cache_prefix=cache_prefix, prose_first=prose_first, exercises_apart=apart
        ),
        json_schema=schema,
        schema_name="lesson",
        max_tokens=max_tokens,
        temperature=settings.routing.temperature,
        timeout_s=timeout_s,
        tags=dict(tags or {}),
        prose_first=_prose_first(
            list(numbers),
            asked,
            source_ids,
            words,
            max_tokens,
            exercises_apart=apart,
            example=worked_example_kind(brief.analysis),
        )
        if prose_first
        else None,
    )


#: The output bound of an exercises request (the eval set's exercises average ~200 tokens a
#: lesson; four long ones stay under it).
EXERCISES_MAX_TOKENS = 900


def exercises_request(
    brief: LessonBrief,
    settings: Settings,
    content: str,
    *,
    feedback: str = "",
    timeout_s: float | None = None,
    tags: Mapping[str, str] | None = None,
    tier: str | None = None,
) -> ChatRequest:
    """The request for a lesson's exercises written apart (`routing.exercises_tier`):
    the lesson's `content` and outcomes in, `{"exercises": [...]}` out, on the exercises tier's
    model (or `tier`'s: the retry of an unusable answer), under the lesson schema's exercise
    bounds narrowed to the lesson's outcomes."""
    tier = tier or settings.routing.exercises_tier
    assert tier is not None
    model = settings.models[settings.routing.tiers[tier]]
    gates = settings.gates
    numbers = brief.outcome_numbers if brief.outcome_numbers is not None else [n for n, _ in brief.outcomes]
    asked = brief.exercises(settings)
    lesson = lesson_schema_for(
        lesson_schema(gates.lesson_min_words, gates.lesson_max_words, asked[1], asked[0]), list(numbers), []
    )
    if model.local is not None:  # a grammar binds it: each exercise's shape fixed by its type
        lesson = exercises_by_type(lesson)
    return ChatRequest(
        exercises_messages(
            analysis=brief.analysis,
            section=brief.section,
            lesson_title=brief.lesson_title,
            outcomes=brief.outcomes,
            content=content,
            exercises=asked,
            style=brief.style,
            feedback=feedback,
        ),
        json_schema={
            "type": "object",
            "properties": {"exercises": lesson["properties"]["exercises"]},
            "required": ["exercises"],
            "additionalProperties": False,
        },
        schema_name="exercises",
        max_tokens=min(model.max_output_tokens, EXERCISES_MAX_TOKENS),
        temperature=settings.routing.temperature,
        timeout_s=timeout_s,
        tags=dict(tags or {}),
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


@dataclass(slots=True)
class _Generation:
    """One lesson generation ready to run: its brief, task, starting tier and attempts."""

    slot: LessonSlot
    task: TaskId
    phase: str
    round: int
    brief: LessonBrief
    route: Route
    start_tier: str
    priority: tuple[str, PrioritySettings]
    build: Callable[[str, int, str], ChatRequest]
    attempts: _Attempts
    sampled: bool
    #: The first attempt's answer when it came in a section's request (`routing.group_lessons`).
    first: CallResult | None = field(default=None)


async def _prepare(
    state: CourseState,
    slot: LessonSlot,
    ctx: PipelineContext,
    phase: str,
    round: int = 0,
    *,
    sequential: bool = False,
) -> _Generation:
    """The slot's brief (with the sources' passages it is shown and graded against), its
    request builder and where its first attempt goes."""
    assert state.core is not None and state.extras is not None
    spec = state.analysis.sections[slot.section_index]
    task = TaskId.lesson_task(slot.id, round=0 if slot.task_tag else slot.rounds, tag=slot.task_tag)
    priority_name, priority = ctx.priority_for(spec.section_type, spec.critical)
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
    attempts.brief, attempts.timeout_s, attempts.tags = brief, timeout_s, tags
    attempts.policy = ctx.policy(priority, step_down_on_budget=True)
    sampled = is_sampled(ctx, spec.section_type, spec.critical)
    attempts.sampled = sampled
    return _Generation(
        slot,
        task,
        phase,
        round,
        brief,
        route,
        start_tier,
        (priority_name, priority),
        build,
        attempts,
        sampled,
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
    prepared: _Generation | None = None,
) -> None:
    """Generate one slot through the cascade (`phase`/`round`: where it runs, for the report);
    the slot ends accepted, flagged (best attempt kept) or failed. Never raises an `Exception`
    (a provider error, an embedder crash, a bug in a gate): that lesson fails, the course goes on.
    `sequential`: the fallback run after a failed parallel one, with the priority's longer
    timeout (`routing.sequential_timeout_factor` times its `timeout_s`). `prepared`: the
    generation `_prepare` made (with its grouped first answer, if any)."""
    g = prepared or await _prepare(state, slot, ctx, phase, round, sequential=sequential)
    attempts, (priority_name, priority) = g.attempts, g.priority
    attempts.first = g.first
    async with sem:
        with span(
            "task lesson", _task_attributes(g.task.key(), phase, g.route, priority_name, g.start_tier)
        ) as attempts.task_span:
            try:
                result = await run_cascade(
                    phase=phase,
                    round=round,
                    task=g.task,
                    start_tier=g.start_tier,
                    policy=ctx.policy(priority, step_down_on_budget=True),
                    build=g.build,
                    parse=parser_for(LessonDraft),
                    check=attempts.check,
                    call=attempts.call,
                )
            except JobStopped:
                raise  # the provider stopped the whole job (401, 402): not one lesson's failure
            except Exception as exc:  # isolation: one lesson's failure is recorded, never raised
                slot.status, slot.reason = "failed", f"{type(exc).__name__}: {exc}"[:500]
                slot.transient_failure = True
                attempts.task_span.error(type(exc).__name__, str(exc))
                state.decisions.append(
                    Decision(task=g.task.key(), action="fail", tier=g.start_tier, reason=slot.reason)
                )
                return
            _trace_result(attempts.task_span, result.decisions, result.status, result.tier, result.attempts)
    _settle(state, slot, ctx, g.task, result, phase)


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
        self.sampled = False
        self.first: CallResult | None = None
        self.brief: LessonBrief | None = None
        self.timeout_s: float | None = None
        self.tags: dict[str, str] = {}
        #: The lesson's policy now (its budget ceiling, whether it may escalate).
        self.policy: Callable[[], Policy] | None = None

    async def call(self, attempt: CallSpec) -> CallResult:
        """The lesson's answer to `attempt`: its section's grouped answer for the first attempt
        when there is one, else its own call (sampled where configured); with
        `routing.exercises_tier`, completed by its exercises from a call of their own."""
        if self.first is not None and attempt.attempt == 1 and attempt.tier == self.first.record.tier:
            result, self.first = self.first, None
        else:
            result = await (self.sampling_call if self.sampled else self.ctx.effects.call)(attempt)
        if self.ctx.settings.routing.exercises_tier is None:
            return result
        return await self._with_exercises(result, attempt)

    async def _with_exercises(self, result: CallResult, attempt: CallSpec) -> CallResult:
        """`result` (a lesson without exercises) with the exercises the exercises tier writes
        for its text. An answer that is no lesson goes back as it is (the cascade's parse
        refuses it). An unusable exercises answer is asked once more on the same lesson text, a
        tier up (`_exercise_tiers`: a schema failure escalates at once, as a lesson's does), so
        the lesson call already paid is kept; an exercises call that still fails, or fails to
        send, fails the attempt, the lesson's call marked rejected with it."""
        try:
            body = json.loads(result.response.text, strict=False)
        except ValueError:
            return result
        if not isinstance(body, dict) or not isinstance(body.get("content"), str) or self.brief is None:
            return result
        failure: Exception | None = None
        for tier in self._exercise_tiers(attempt):
            request = exercises_request(
                self.brief,
                self.ctx.settings,
                body["content"],
                timeout_s=self.timeout_s,
                tags=self.tags,
                tier=tier,
            )
            spec = CallSpec(
                phase=attempt.phase,
                task=attempt.task.base.exercises(),
                tier=tier,
                attempt=attempt.attempt,
                request=request,
                round=attempt.round,
            )
            try:
                answer = await self.ctx.effects.call(spec)
            except BadResponse as exc:  # unusable (its call record says so): ask a tier up
                failure = exc
                continue
            except (ProviderError, BudgetExceeded) as exc:
                result.reject(f"its exercises call failed: {exc}")
                raise
            try:
                exercises = json.loads(answer.response.text, strict=False)["exercises"]
            except (ValueError, KeyError, TypeError) as exc:
                answer.reject(f"schema: {exc}")
                failure = BadResponse(f"exercises answer unusable: {exc}", model=answer.record.model)
                continue
            merged = json.dumps({**body, "exercises": exercises}, ensure_ascii=False)
            return CallResult(replace(result.response, text=merged), result.record)
        assert failure is not None
        result.reject(f"its exercises call failed: {failure}")
        raise failure

    def _exercise_tiers(self, attempt: CallSpec) -> list[str]:
        """Where a lesson attempt's exercises are asked: the exercises tier, then once more the
        tier above it — unless there is none, it is above the budget's ceiling, or the lesson
        may not escalate (a supplementary one) and it is above the lesson's own tier."""
        tier = self.ctx.settings.routing.exercises_tier
        assert tier is not None
        ladder = self.ctx.settings.routing.ladder
        up = next_tier(ladder, tier)
        policy = self.policy() if self.policy is not None else None
        if up == tier or policy is None:
            return [tier]
        if policy.ceiling is not None and tier_rank(ladder, up) > tier_rank(ladder, policy.ceiling):
            return [tier]
        if not policy.escalate and tier_rank(ladder, up) > tier_rank(ladder, attempt.tier):
            return [tier]
        return [tier, up]

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


def _kept_failures(result: TaskResult[LessonDraft]) -> list[GateResult]:
    """The gates the kept attempt of a flagged result failed."""
    details = result.verdict.details if result.verdict and result.verdict.details else ()
    return [g for g in details if not g.passed]


def _failed_rewrite(slot: LessonSlot, result: TaskResult[LessonDraft], phase: str) -> list[GateResult]:
    """What a phase-4 rewrite's kept attempt fails when every attempt failed its gates and the
    draft it was rewriting had passed them all; empty otherwise. Session 3's spanish-a1 S5-L2
    rewrite (519, then 622 words over a 500 cap) and session 4's S4-L1 rewrite (announcing
    instead of teaching, then 600 words) replaced drafts that had passed every lesson gate."""
    if phase != "quality" or result.status != "flagged" or slot.draft is None:
        return []
    if not slot.gates or not all(g.passed for g in slot.gates):
        return []
    return _kept_failures(result)


def _settle(
    state: CourseState,
    slot: LessonSlot,
    ctx: PipelineContext,
    task: TaskId,
    result: TaskResult[LessonDraft],
    phase: str = "",
) -> None:
    """The cascade's outcome on the slot: failed (transient or not), accepted or flagged. A
    flagged slot's reason names what its kept attempt failed; a phase-4 rewrite that failed its
    gates in every attempt does not replace a draft that had passed them."""
    state.decisions += result.decisions
    slot.attempts += result.attempts
    if failed := _failed_rewrite(slot, result, phase):
        why = "; ".join(r for g in failed for r in g.reasons)
        slot.status = "flagged"
        slot.reason = (
            f"its rewrite failed its gates in every attempt ({why}): the earlier draft, which "
            f"passed them, is kept. {slot.feedback}"
        )[:500]
        slot.feedback = ""
        state.decisions.append(Decision(task=task.key(), action="flag", tier=slot.tier, reason=slot.reason))
        return
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
    if slot.status == "flagged" and (failed := _kept_failures(result)):
        slot.reason = f"{result.reason}; it fails: {'; '.join(r for g in failed for r in g.reasons)}"[:500]
    if (
        slot.status == "accepted"
        and ctx.settings.gates.judge.flag_borderline
        and borderline_accepted(slot.gates)
    ):
        # A borderline similarity the judge accepted proceeds, with a flag for a person.
        slot.status = "flagged"
        slot.reason = "borderline similarity accepted by the judge: proceeds with a flag for a person"
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

    async def one(
        slot: LessonSlot,
        lock: asyncio.Semaphore,
        sequential: bool = False,
        prepared: _Generation | None = None,
    ) -> None:
        nonlocal done
        started = ctx.effects.now_ms()
        attempts = slot.attempts
        await generate_lesson(state, slot, ctx, lock, phase, round, sequential=sequential, prepared=prepared)
        done += 1
        took = (ctx.effects.now_ms() - started) / 1000
        tried = slot.attempts - attempts
        where = f"{slot.tier}, " if slot.tier else ""
        how = "sequential fallback: " if sequential else ""
        message = (
            f"{how}{slot.id} {slot.status} ({where}{tried} attempt{'s' if tried != 1 else ''}, {took:.1f} s)"
        )
        ctx.progress(ProgressEvent(phase, "task_done", message, slot.id, done, total))

    if ctx.settings.routing.group_lessons and phase == "lessons" and round == 0:
        prepared = await asyncio.gather(*(_prepare(state, s, ctx, phase, round) for s in slots))
        await _ask_groups(state, ctx, prepared, sem)
        tasks = [asyncio.ensure_future(one(g.slot, sem, prepared=g)) for g in prepared]
    else:
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


def _groups(ctx: PipelineContext, prepared: Sequence[_Generation]) -> list[list[_Generation]]:
    """The sections' lessons that can share a request: first generations starting on the same
    tier, neither sampled for self-consistency on it nor written prose-first (a local model's
    markdown answer holds one lesson); groups of two or more."""
    settings = ctx.settings
    by_key: dict[tuple[int, str], list[_Generation]] = {}
    for g in prepared:
        model = settings.models[settings.routing.tiers[g.start_tier]]
        sampled = g.sampled and g.start_tier in settings.gates.consistency.tiers
        if sampled or (model.local is not None and model.local.prose_first) or g.slot.task_tag:
            continue
        by_key.setdefault((g.slot.section_index, g.start_tier), []).append(g)
    return [members for members in by_key.values() if len(members) > 1]


def _group_schema(requests: Sequence[ChatRequest]) -> dict[str, Any]:
    """`{"lessons": [...]}`, one lesson each: the members' lesson schema, its exercises naming
    any outcome of the group (each lesson's own are checked by its gates)."""
    base = requests[0].json_schema
    assert base is not None
    numbers: set[int] = set()
    for r in requests:
        assert r.json_schema is not None
        exercises = r.json_schema["properties"].get("exercises")
        if exercises is not None:
            numbers.update(exercises["items"]["properties"]["outcome"]["enum"])
    item = dict(base)
    if "exercises" in base["properties"]:
        exercises = base["properties"]["exercises"]
        outcome = {"type": "integer", "enum": sorted(numbers)}
        narrowed = {
            **exercises["items"],
            "properties": {**exercises["items"]["properties"], "outcome": outcome},
        }
        item["properties"] = {**base["properties"], "exercises": {**exercises, "items": narrowed}}
    n = len(requests)
    lessons = {"type": "array", "minItems": n, "maxItems": n, "items": item}
    return {
        "type": "object",
        "properties": {"lessons": lessons},
        "required": ["lessons"],
        "additionalProperties": False,
    }


async def _ask_groups(
    state: CourseState, ctx: PipelineContext, prepared: Sequence[_Generation], sem: asyncio.Semaphore
) -> None:
    """Each group's lessons in one request (`routing.group_lessons`): every member's first attempt is then its
    part of the answer, parsed and checked on its own. A group whose call fails, or whose
    answer does not hold its lessons, leaves its members to their own first calls."""

    async def ask(members: list[_Generation]) -> None:
        lead = members[0]
        tier, section = lead.start_tier, state.analysis.sections[lead.slot.section_index]
        requests = [g.build(tier, 1, "") for g in members]
        model = ctx.settings.models[ctx.settings.routing.tiers[tier]]
        timeout = lead.attempts.timeout_s
        request = ChatRequest(
            lesson_group_messages([r.messages for r in requests], section.title),
            json_schema=_group_schema(requests),
            schema_name="lessons",
            max_tokens=min(model.max_output_tokens, sum(r.max_tokens for r in requests)),
            temperature=ctx.settings.routing.temperature,
            timeout_s=None if timeout is None else timeout * len(members),
            tags={**lead.attempts.tags, "task": TaskId.group_task(lead.slot.section_index).key()},
        )
        task = TaskId.group_task(lead.slot.section_index)
        spec = CallSpec(phase=lead.phase, task=task, tier=tier, attempt=1, request=request, round=lead.round)
        reason = ""
        try:
            async with sem:
                result = await ctx.effects.call(spec)
            parts = json.loads(result.response.text, strict=False)["lessons"]
            if not isinstance(parts, list) or len(parts) != len(members):
                raise ValueError(
                    f"{len(parts) if isinstance(parts, list) else 'no'} lessons for {len(members)}"
                )
        except JobStopped:
            raise
        except (ProviderError, BudgetExceeded, ValueError, KeyError, TypeError) as exc:
            reason = f"{type(exc).__name__}: {exc}"[:300]
            parts = []
        for g, part in zip(members, parts, strict=False):
            text = json.dumps(part, ensure_ascii=False)
            g.first = CallResult(replace(result.response, text=text, repairs=()), result.record.model_copy())
        state.decisions.append(
            Decision(
                task=task.key(),
                action="group",
                tier=tier,
                reason=f"{len(members)} lessons in one request"
                + (f"; it failed ({reason}): each asked alone" if reason else ""),
                inputs={"lessons": [g.slot.id for g in members]},
            )
        )

    await asyncio.gather(*(ask(members) for members in _groups(ctx, prepared)))


async def run_lessons(state: CourseState, ctx: PipelineContext) -> CourseState:
    """Phase 3: every planned lesson (`create_slots` made the slots from phase 2's plan)."""
    await generate_lessons(state, ctx, list(state.slots.values()), "lessons")
    return state
