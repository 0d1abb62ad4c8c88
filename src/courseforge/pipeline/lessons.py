"""Phase 3: every lesson generated concurrently through the cascade.

The shared context (outcomes, structure, style) is built once in phase 2; here each lesson is
one task: pre-routed to a starting tier, then run up the attempt ladder with its gates as the
check. A failing lesson never sinks the others: its slot is marked failed and phase 5 decides.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import itertools
from typing import Any

from ..domain import Decision
from ..domain.drafts import LessonDraft, json_schema_of
from ..errors import RunError
from ..ledger import estimate_input_tokens
from ..providers import ChatRequest, Embedder
from ..providers.embeddings import cosine
from ..quality.base import GateResult
from ..quality.gates import evaluate_lesson, feedback_text, repair_exercise, thresholds_for
from ..routing import BLOOM_RANK, TaskProfile, Verdict, estimate_complexity, route_task, run_cascade
from .lesson_quality import extra_lesson_gates, lesson_effects
from .parsing import parser_for
from .prompts import lesson_messages
from .state import CourseState, LessonSlot, PipelineContext, ProgressEvent

__all__ = ["EffectsEmbedder", "check_lesson", "create_slots", "generate_lessons", "relabel_exercises"]

_LESSON_MAX_TOKENS = 1800
#: Characters per word (spaces included) used to turn the configured word range into the
#: schema's string bounds so that the bounds imply the range for ordinary prose (English averages
#: ~6): at least 7 per word for the minimum, at most 5 per word for the maximum. A grammar-
#: constrained model then cannot leave the range the length gate checks.
_CHARS_PER_WORD_MIN, _CHARS_PER_WORD_MAX = 7, 5


@functools.lru_cache(maxsize=8)
def lesson_schema(min_words: int, max_words: int, max_exercises: int = 4) -> dict[str, Any]:
    """The lesson schema with `content` bounded by the configured word range, so a grammar-
    constrained model physically cannot run long, and a hosted one is told the same bounds."""
    schema = json_schema_of(LessonDraft)
    content = schema["properties"]["content"]
    content["minLength"] = max(content["minLength"], min_words * _CHARS_PER_WORD_MIN)
    content["maxLength"] = max(
        content["minLength"] + 1, min(content["maxLength"], max_words * _CHARS_PER_WORD_MAX)
    )
    exercises = schema["properties"]["exercises"]
    exercises["maxItems"] = max(exercises["minItems"], min(exercises["maxItems"], max_exercises))
    return schema


def lesson_schema_for(
    base: dict[str, Any], outcome_numbers: list[int], source_ids: list[str]
) -> dict[str, Any]:
    """`base` narrowed to one lesson: an exercise may only name an outcome this lesson teaches,
    and citations may only name the input's source ids (none without sources). Constraints the
    schema can carry are enforced by the model's structured output (and by a local grammar)
    instead of being discovered by a gate after a paid call."""
    schema = copy.deepcopy(base)
    exercise = schema["properties"]["exercises"]["items"]["properties"]
    exercise["outcome"] = {"type": "integer", "enum": sorted(set(outcome_numbers))}
    citations = schema["properties"]["citations"]
    if source_ids:
        citations["items"] = {"type": "string", "enum": list(source_ids)}
        citations["maxItems"] = min(citations.get("maxItems", len(source_ids)), len(source_ids))
    else:
        citations["maxItems"] = 0
    return schema


class EffectsEmbedder(Embedder):
    """The pipeline's embeddings go through Effects like every other effect."""

    def __init__(self, ctx: PipelineContext) -> None:
        self._ctx = ctx
        self.name = ctx.settings.gates.embedding_model

    async def embed(self, texts: list[str]) -> list[list[float]]:  # type: ignore[override]
        return await self._ctx.effects.embed(texts)


def create_slots(state: CourseState) -> None:
    for si, plan in enumerate(state.plans):
        for lp in plan.lessons:
            numbers = [int(o.removeprefix("LO")) for o in lp.outcome_ids]
            state.slots[lp.id] = LessonSlot(
                id=lp.id, section_index=si, title=lp.title, outcome_numbers=numbers
            )


def _exercise_coverage(draft: LessonDraft, numbers: list[int]) -> GateResult:
    wanted = set(numbers)
    named = [e.outcome for e in draft.exercises]
    stray = sorted({n for n in named if n not in wanted})
    missing = sorted(wanted - set(named))
    reasons = []
    if stray:
        reasons.append(
            f"exercises name outcome(s) {stray} that this lesson does not teach (use {sorted(wanted)})"
        )
    if missing:
        reasons.append(f"no exercise assesses outcome(s) {missing}")
    return GateResult(
        "exercise_outcomes",
        not reasons,
        1.0 - len(missing) / len(wanted),
        reasons,
        "pass" if not reasons else "fail",
    )


async def relabel_exercises(
    state: CourseState, slot: LessonSlot, draft: LessonDraft, ctx: PipelineContext
) -> str | None:
    """Small models often tag every exercise with the lesson's first outcome. When the lesson has
    as many exercises as outcomes but some outcome is named by none, the exercises' `outcome`
    labels are reassigned by meaning (the one-to-one match of exercises to outcomes with the
    highest total cosine of "question answer" to outcome text), so that each outcome gets the
    exercise closest to it; only when every newly assessed outcome gets an exercise at least at
    the similarity gate's severe threshold (else the coverage gate still fails it). Returns what
    changed, or None."""
    wanted = sorted(set(slot.outcome_numbers))
    exercises = draft.exercises
    if len(wanted) < 2 or len(exercises) < len(wanted):
        return None
    before = [e.outcome for e in exercises]
    if not set(wanted) - set(before):
        return None
    severe = thresholds_for(ctx.settings.gates, ctx.settings.gates.embedding_model).severe_below
    texts = [f"{e.question} {e.answer}" for e in exercises] + [state.outcomes[n - 1].text for n in wanted]
    vectors = await ctx.effects.embed(texts)
    ex_vecs, out_vecs = vectors[: len(exercises)], vectors[len(exercises) :]
    score = [[cosine(ev, ov) for ov in out_vecs] for ev in ex_vecs]
    best = max(
        itertools.permutations(range(len(exercises)), len(wanted)),
        key=lambda chosen: sum(score[e][o] for o, e in enumerate(chosen)),
    )
    if any(score[e][o] < severe for o, e in enumerate(best) if wanted[o] not in before):
        return None
    for o, e in enumerate(best):
        exercises[e].outcome = wanted[o]
    after = [e.outcome for e in exercises]
    return f"exercise outcomes {before} relabelled by meaning to {after}"


async def check_lesson(
    state: CourseState, slot: LessonSlot, draft: LessonDraft, ctx: PipelineContext
) -> Verdict:
    task = f"lesson:{slot.id}"
    for number, exercise in enumerate(draft.exercises, start=1):
        repaired = repair_exercise(exercise)
        if repaired:
            state.decisions.append(Decision.fix(task, f"exercise {number}: {repaired}"))
    relabelled = await relabel_exercises(state, slot, draft, ctx)
    if relabelled:
        state.decisions.append(Decision.fix(task, relabelled))
    outcomes = {state.outcome_id(n): state.outcomes[n - 1].text for n in slot.outcome_numbers}
    results = await evaluate_lesson(draft, outcomes, EffectsEmbedder(ctx), ctx.settings.gates)
    results.append(_exercise_coverage(draft, slot.outcome_numbers))
    results = await extra_lesson_gates(state, slot, draft, ctx, results, outcomes)
    sources = {m.id for m in state.analysis.source_material}
    unknown = [c for c in draft.citations if c not in sources]
    if unknown:
        results.append(
            GateResult("citations", False, None, [f"cites unknown source id(s) {unknown}"], "fail")
        )
    failed = [r for r in results if not r.passed]
    similarity = next((r.score for r in results if r.gate == "similarity"), None)
    return Verdict(
        passed=not failed,
        score=similarity,
        severe=any(r.verdict == "severe" for r in failed),
        feedback=feedback_text(failed) if failed else "",
        details=results,
    )


async def generate_lesson(
    state: CourseState, slot: LessonSlot, ctx: PipelineContext, sem: asyncio.Semaphore, phase: str
) -> None:
    analysis = state.analysis
    spec = analysis.sections[slot.section_index]
    plan = state.plans[slot.section_index]
    assert state.core is not None and state.extras is not None
    outcomes = [(n, state.outcomes[n - 1]) for n in slot.outcome_numbers]
    siblings = [s.title for s in state.slots_in(slot.section_index) if s.id != slot.id]
    words = (ctx.settings.gates.lesson_min_words, ctx.settings.gates.lesson_max_words)
    suffix = f"/{slot.task_tag}" if slot.task_tag else f"/r{slot.rounds}" if slot.rounds else ""
    task = f"lesson:{slot.id}{suffix}"
    complexity = spec.complexity or estimate_complexity(spec.key_concepts, analysis.difficulty, spec.guidance)
    priority_name, priority = ctx.priority_for(spec.section_type, spec.critical)
    source_ids = [m.id for m in analysis.source_material]

    def build(tier: str, attempt: int, feedback: str) -> ChatRequest:
        model = ctx.settings.models[ctx.settings.routing.tiers[tier]]
        note = " ".join(x for x in (slot.feedback, feedback) if x)
        messages = lesson_messages(
            analysis=analysis,
            course_title=state.core.course_title if state.core else analysis.topic,
            section=spec,
            section_summary=plan.summary,
            lesson_title=slot.title,
            outcomes=outcomes,
            sibling_titles=siblings,
            words=words,
            style=state.extras.style_guidelines if state.extras else "",
            feedback=note,
            max_exercises=ctx.settings.gates.max_exercises,
        )
        return ChatRequest(
            messages,
            json_schema=lesson_schema_for(
                lesson_schema(*words, ctx.settings.gates.max_exercises), slot.outcome_numbers, source_ids
            ),
            schema_name="lesson",
            max_tokens=min(model.max_output_tokens, _LESSON_MAX_TOKENS),
            temperature=ctx.settings.routing.temperature,
            timeout_s=priority.timeout_s,
            tags={"phase": phase, "task": task, "max_retries": str(priority.retries)},
        )

    probe = build(ctx.settings.routing.ladder[0], 1, "")
    profile = TaskProfile(
        task=task,
        complexity=complexity,
        critical=spec.critical,
        section_type=spec.section_type,
        bloom_rank=max(BLOOM_RANK[o.bloom_level] for _, o in outcomes),
        context_tokens=estimate_input_tokens(probe.messages) + probe.max_tokens,
    )
    route = route_task(profile, ctx.settings.routing, ctx.settings.models)
    start_tier = route.tier
    ceiling = ctx.policy(priority)().ceiling
    ladder = ctx.settings.routing.ladder
    if ceiling and start_tier in ladder and ladder.index(start_tier) > ladder.index(ceiling):
        # Near the budget cap new tasks start no higher than the step-down tier.
        state.decisions.append(
            Decision(
                task=task,
                action="step_down",
                tier=ceiling,
                reason=f"budget {ctx.effects.budget_fraction():.0%} used: {start_tier} capped at {ceiling}",
            )
        )
        start_tier = ceiling
    state.decisions.append(
        Decision(
            task=task,
            action="route",
            tier=route.tier,
            reason=route.reason,
            inputs={**route.inputs, "priority": priority_name},
        )
    )
    async with sem:
        try:
            result = await run_cascade(
                phase=phase,
                task=task,
                start_tier=start_tier,
                policy=ctx.policy(priority),
                build=build,
                parse=parser_for(LessonDraft),
                check=lambda d: check_lesson(state, slot, d, ctx),
                effects=lesson_effects(state, slot, ctx),
            )
        except RunError as exc:  # isolation: one lesson's failure is recorded, never raised
            slot.status, slot.reason = "failed", f"{type(exc).__name__}: {exc}"
            return
    state.decisions += result.decisions
    slot.attempts += result.attempts
    slot.tier, slot.model, slot.reason = result.tier, result.model, result.reason
    if result.value is None:
        slot.status = "failed"
        return
    slot.draft = result.value
    slot.gates = list(result.verdict.details) if result.verdict and result.verdict.details else []
    slot.status = "accepted" if result.status == "accepted" else "flagged"
    slot.feedback = ""


async def generate_lessons(
    state: CourseState, ctx: PipelineContext, slots: list[LessonSlot], phase: str
) -> None:
    sem = asyncio.Semaphore(ctx.settings.routing.max_parallel_tasks)
    total, done = len(slots), 0

    async def one(slot: LessonSlot) -> None:
        nonlocal done
        await generate_lesson(state, slot, ctx, sem, phase)
        done += 1
        ctx.progress(ProgressEvent(phase, "task_done", f"{slot.id} {slot.status}", slot.id, done, total))

    await asyncio.gather(*(one(s) for s in slots))
