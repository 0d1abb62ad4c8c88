"""Phase 2: metadata. Critical fields (outcomes, strategy, structure, taxonomy) on the premium
tier; non-critical fields (audience detail, prerequisites, time, style) cheap-first with
escalation, concurrently. Structure problems a rule can fix are fixed and logged; the rest go
back to the model as feedback."""

from __future__ import annotations

import asyncio

from ..domain import Decision, LearningOutcome, LessonPlan, ReviewFlag, SectionPlan
from ..domain.drafts import MetadataCoreDraft, MetadataExtrasDraft, json_schema_of
from ..errors import GenerationFailed
from ..providers import ChatRequest
from ..quality.base import GateContext
from ..quality.bloom import levels_of, main_verb
from ..quality.gates import OutcomesGate
from ..routing import BLOOM_RANK, TaskResult, Verdict, run_cascade
from .parsing import parser_for
from .prompts import metadata_core_messages, metadata_extras_messages
from .state import CourseState, PipelineContext

__all__ = ["run_metadata"]

_CORE_SCHEMA = json_schema_of(MetadataCoreDraft)
_EXTRAS_SCHEMA = json_schema_of(MetadataExtrasDraft)
_CRITICAL = "critical"


def _max_tokens(ctx: PipelineContext, tier: str, wanted: int) -> int:
    model = ctx.settings.models[ctx.settings.routing.tiers[tier]]
    return min(model.max_output_tokens, wanted)


def _fix_bloom_levels(state: CourseState, draft: MetadataCoreDraft) -> None:
    """A measurable verb filed under the wrong level is corrected by rule (and logged), not
    sent back: the verb is what the outcome asks of the learner."""
    for i, outcome in enumerate(draft.learning_outcomes, start=1):
        verb = main_verb(outcome.text)
        levels = levels_of(verb) if verb else []
        if levels and outcome.bloom_level not in levels:
            declared = BLOOM_RANK[outcome.bloom_level]
            level = min(levels, key=lambda lv: abs(BLOOM_RANK[lv] - declared))
            state.decisions.append(
                Decision(
                    task="metadata_core",
                    action="fix",
                    tier="",
                    reason=f"outcome {i}: '{verb}' is a {level} verb; level {outcome.bloom_level} -> {level}",
                )
            )
            outcome.bloom_level = level  # type: ignore[assignment]


async def _check_core(state: CourseState, draft: MetadataCoreDraft) -> Verdict:
    reasons: list[str] = []
    _fix_bloom_levels(state, draft)
    outcome_result = OutcomesGate().check(draft.learning_outcomes, GateContext())
    if not outcome_result.passed:
        reasons.extend(outcome_result.reasons)
    want = len(state.analysis.sections)
    if len(draft.sections) < want:
        reasons.append(f"course structure has {len(draft.sections)} sections, needs exactly {want}")
    if reasons:
        return Verdict(False, score=0.0, feedback="; ".join(reasons)[:600], details=outcome_result)
    return Verdict(True, score=1.0, details=outcome_result)


async def _placements(
    state: CourseState, draft: MetadataCoreDraft, ctx: PipelineContext
) -> dict[int, tuple[int, int]]:
    """For each outcome no lesson teaches: the (section, lesson) index whose title, section and
    key concepts are closest to it in meaning. Never an arbitrary lesson: a lesson handed an
    outcome it is not about can only fail its similarity gate."""
    n_out = len(draft.learning_outcomes)
    taught = {n for plan in draft.sections for lp in plan.lessons for n in lp.outcomes}
    missing = [n for n in range(1, n_out + 1) if n not in taught]
    if not missing:
        return {}
    slots: list[tuple[int, int]] = []
    texts: list[str] = []
    for si, (spec, plan) in enumerate(zip(state.analysis.sections, draft.sections, strict=False)):
        for li, lp in enumerate(plan.lessons[: state.lesson_counts[si]]):
            slots.append((si, li))
            texts.append(f"{lp.title}. {spec.title}: {', '.join(spec.key_concepts)}")
    if not slots:
        return {}
    vectors = await ctx.effects.embed([draft.learning_outcomes[n - 1].text for n in missing] + texts)
    out: dict[int, tuple[int, int]] = {}
    for k, number in enumerate(missing):
        scores = [sum(a * b for a, b in zip(vectors[k], v, strict=True)) for v in vectors[len(missing) :]]
        out[number] = slots[max(range(len(slots)), key=scores.__getitem__)]
    return out


def _normalise_structure(
    state: CourseState, draft: MetadataCoreDraft, placements: dict[int, tuple[int, int]] | None = None
) -> list[Decision]:
    """Make the accepted structure match the plan exactly; log each rule-based fix."""
    fixes: list[Decision] = []
    n_out = len(draft.learning_outcomes)
    state.outcomes = [
        LearningOutcome(id=f"LO{i + 1}", text=o.text, bloom_level=o.bloom_level)
        for i, o in enumerate(draft.learning_outcomes)
    ]
    plans: list[SectionPlan] = []
    used: set[int] = set()
    for si, (spec, plan) in enumerate(zip(state.analysis.sections, draft.sections, strict=False)):
        want = state.lesson_counts[si]
        lessons = list(plan.lessons[:want])
        concepts = spec.key_concepts
        while len(lessons) < want:
            concept = concepts[len(lessons) % len(concepts)]
            lessons.append(type(plan.lessons[0])(title=f"{spec.title}: {concept}", outcomes=[1]))
            fixes.append(
                Decision(
                    task="metadata",
                    action="fix",
                    tier="",
                    reason=f"section {si + 1}: added lesson for concept {concept!r} to reach {want} lessons",
                )
            )
        lesson_plans = []
        for li, lp in enumerate(lessons):
            numbers = sorted({n for n in lp.outcomes if 1 <= n <= n_out}) or [1 + (li + si) % n_out]
            used.update(numbers)
            lesson_plans.append(
                LessonPlan(id=f"S{si + 1}-L{li + 1}", title=lp.title, outcome_ids=[f"LO{n}" for n in numbers])
            )
        plans.append(
            SectionPlan(
                id=f"S{si + 1}",
                title=spec.title,
                section_type=spec.section_type,
                summary=plan.summary,
                lessons=lesson_plans,
            )
        )
    # Every outcome must be taught: an untaught one goes to the lesson closest to it in meaning
    # (`placements`), else to the lesson with the fewest outcomes.
    for number in range(1, n_out + 1):
        if number in used:
            continue
        place = (placements or {}).get(number)
        if place is not None and place[0] < len(plans) and place[1] < len(plans[place[0]].lessons):
            target = plans[place[0]].lessons[place[1]]
        else:
            target = min((lp for p in plans for lp in p.lessons), key=lambda lp: len(lp.outcome_ids))
        target.outcome_ids.append(f"LO{number}")
        fixes.append(
            Decision(
                task="metadata",
                action="fix",
                tier="",
                reason=f"outcome LO{number} was taught by no lesson: given to {target.id}",
            )
        )
    state.plans = plans
    return fixes


def _extras_fallback(state: CourseState) -> MetadataExtrasDraft:
    lessons = sum(state.lesson_counts)
    # Built by rule, not by a model: the length bounds of the draft do not apply.
    return MetadataExtrasDraft.model_construct(
        target_audience=state.analysis.target_audience,
        prerequisites=[],
        time_estimate_minutes=max(10, 20 * lessons),
        style_guidelines=state.analysis.style_guidelines or "Clear, concrete, example-first.",
    )


async def run_metadata(state: CourseState, ctx: PipelineContext) -> CourseState:
    routing = ctx.settings.routing
    analysis = state.analysis
    temperature = routing.temperature
    n_lessons = sum(state.lesson_counts)
    _, critical = ctx.priority_for("metadata", True)
    _, standard = ctx.priority_for("metadata", False)

    def build_core(tier: str, attempt: int, feedback: str) -> ChatRequest:
        wanted = 900 + 45 * n_lessons
        return ChatRequest(
            metadata_core_messages(analysis, state.lesson_counts, feedback),
            json_schema=_CORE_SCHEMA,
            schema_name="course_metadata",
            max_tokens=_max_tokens(ctx, tier, wanted),
            temperature=temperature,
            timeout_s=critical.timeout_s,
            tags={"phase": "metadata", "task": "metadata_core", "max_retries": str(critical.retries)},
        )

    def build_extras(tier: str, attempt: int, feedback: str) -> ChatRequest:
        return ChatRequest(
            metadata_extras_messages(analysis, n_lessons, feedback),
            json_schema=_EXTRAS_SCHEMA,
            schema_name="course_extras",
            max_tokens=_max_tokens(ctx, tier, 500),
            temperature=temperature,
            timeout_s=standard.timeout_s,
            tags={"phase": "metadata", "task": "metadata_extras", "max_retries": str(standard.retries)},
        )

    async def check_extras(draft: MetadataExtrasDraft) -> Verdict:
        floor = 5 * n_lessons
        if draft.time_estimate_minutes < floor:
            return Verdict(
                False,
                score=0.5,
                feedback=f"time estimate {draft.time_estimate_minutes} min "
                f"is implausible for {n_lessons} lessons (at least {floor})",
            )
        return Verdict(True, score=1.0)

    core_task = run_cascade(
        phase="metadata",
        task="metadata_core",
        start_tier=routing.metadata_tier,
        policy=ctx.policy(critical),
        build=build_core,
        parse=parser_for(MetadataCoreDraft),
        check=lambda d: _check_core(state, d),
        effects=ctx.effects,
    )
    extras_task = run_cascade(
        phase="metadata",
        task="metadata_extras",
        start_tier=routing.metadata_extras_tier,
        policy=ctx.policy(standard),
        build=build_extras,
        parse=parser_for(MetadataExtrasDraft),
        check=check_extras,
        effects=ctx.effects,
    )
    core: TaskResult[MetadataCoreDraft]
    extras: TaskResult[MetadataExtrasDraft]
    core, extras = await asyncio.gather(core_task, extras_task)
    state.decisions += core.decisions + extras.decisions
    if core.value is None:
        raise GenerationFailed(f"metadata could not be generated: {core.reason}")
    state.core = core.value
    if core.status == "flagged":
        state.flags.append(
            ReviewFlag(
                target="metadata",
                reason=core.reason + ": " + (core.verdict.feedback if core.verdict else ""),
                gate="metadata",
            )
        )
    state.decisions += _normalise_structure(state, core.value, await _placements(state, core.value, ctx))
    if extras.value is None:
        state.extras = _extras_fallback(state)
        state.flags.append(
            ReviewFlag(
                target="metadata",
                gate="metadata_extras",
                reason=f"non-critical fields filled by rule: {extras.reason}",
            )
        )
    else:
        state.extras = extras.value
    return state
