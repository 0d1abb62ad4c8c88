"""The plan checkpoint between phase 2 and phase 3: the course plan as an author sees it, an
edited plan checked (its shape, then the metadata gates phase 2 holds a model's plan to) and
applied to the course state before any lesson is paid.

    plan = plan_of(state, ctx)                 # metadata, outcomes, lessons with estimates
    problems = await gate_plan(state, edited, ctx)   # [] when it may be applied
    apply_plan(state, edited)                  # outcomes renumbered LO1.., lessons S1-L1..

The estimate of a lesson is one first attempt on the tier pre-routing starts it on (its prompt
as phase 3 builds it without source excerpts, an answer of the lesson's word bound and
exercises): retries, escalations, judges and phase 4-5 work are not in it (docs/authoring.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any, TypeVar

from pydantic import ValidationError

from ..domain import (
    AnalysisResult,
    CoursePlan,
    LearningOutcome,
    LessonPlan,
    PlanLesson,
    PlanOutcome,
    PlanSection,
    SectionPlan,
)
from ..domain.drafts import (
    LessonPlanDraft,
    MetadataCoreDraft,
    MetadataExtrasDraft,
    OutcomeDraft,
    SectionPlanDraft,
)
from ..domain.tasks import lesson_key, outcome_id, outcome_number
from ..ledger import estimate_input_tokens, price_of
from ..providers import Usage, Vector
from ..providers.effects import CallResult, CallSpec
from ..routing import BLOOM_RANK, TaskProfile, estimate_complexity, route_task
from .metadata import _check_core
from .prompts import lesson_messages
from .state import CourseState, PipelineContext, ProgressEvent

__all__ = [
    "PlanReview",
    "apply_plan",
    "embedding_context",
    "gate_plan",
    "plan_checkpoint",
    "plan_of",
    "plan_record",
    "state_from_record",
]

#: Output tokens per word of a lesson, and per exercise (question, options, answer, why).
_TOKENS_PER_WORD, _TOKENS_PER_EXERCISE = 1.4, 90


class PlanReview(Exception):
    """The run stops at the plan checkpoint (raised inside `run_pipeline`, never outside it)."""


def _estimate(state: CourseState, ctx: PipelineContext, si: int, lesson: LessonPlan) -> tuple[str, Decimal]:
    settings = ctx.settings
    spec = state.analysis.sections[si]
    numbers = [outcome_number(o) for o in lesson.outcome_ids]
    outcomes = [(n, state.outcomes[n - 1]) for n in numbers if 1 <= n <= len(state.outcomes)]
    gates = settings.gates
    messages = lesson_messages(
        analysis=state.analysis,
        course_title=state.core.course_title if state.core else state.analysis.topic,
        section=spec,
        section_summary=state.plans[si].summary,
        lesson_title=lesson.title,
        outcomes=outcomes,
        sibling_titles=[lp.title for lp in state.plans[si].lessons if lp.id != lesson.id],
        words=(gates.lesson_min_words, gates.lesson_max_words),
        style=state.extras.style_guidelines if state.extras else "",
        exercises=(gates.min_exercises, gates.max_exercises),
        sources=[],
    )
    output = int(gates.lesson_max_words * _TOKENS_PER_WORD + gates.max_exercises * _TOKENS_PER_EXERCISE)
    tokens_in = estimate_input_tokens(messages)
    profile = TaskProfile(
        task=lesson_key(lesson.id),
        complexity=spec.complexity
        or estimate_complexity(spec.key_concepts, state.analysis.difficulty, spec.guidance),
        critical=spec.critical,
        section_type=spec.section_type,
        bloom_rank=max((BLOOM_RANK[o.bloom_level] for _, o in outcomes), default=2),
        context_tokens=tokens_in + output,
    )
    tier = route_task(profile, settings.routing, settings.models).tier
    model = settings.models[settings.routing.tiers[tier]]
    cost, _ = price_of(model, Usage(input_tokens=tokens_in, output_tokens=output))
    return tier, cost


def plan_of(state: CourseState, ctx: PipelineContext, *, spent_usd: Decimal = Decimal(0)) -> CoursePlan:
    """The plan phase 2 produced (or the one applied), with each lesson's start tier and cost
    estimate and the course's projection against its budget."""
    assert state.core is not None
    sections = []
    projected = Decimal(0)
    for si, section in enumerate(state.plans):
        lessons = []
        for lesson in section.lessons:
            tier, cost = _estimate(state, ctx, si, lesson)
            projected += cost
            lessons.append(
                PlanLesson(
                    id=lesson.id,
                    title=lesson.title,
                    outcomes=list(lesson.outcome_ids),
                    start_tier=tier,
                    estimated_cost_usd=float(round(cost, 6)),
                )
            )
        sections.append(
            PlanSection(id=section.id, title=section.title, summary=section.summary, lessons=lessons)
        )
    return CoursePlan(
        course_title=state.core.course_title,
        description=state.core.description,
        outcomes=[PlanOutcome(id=o.id, text=o.text, bloom_level=o.bloom_level) for o in state.outcomes],
        sections=sections,
        projected_lessons_usd=float(round(projected, 6)),
        spent_usd=float(round(spent_usd, 6)),
        budget_usd=float(ctx.budget_usd),
    )


def _numbering(plan: CoursePlan) -> dict[str, int]:
    """Outcome id -> its number after apply (1-based, in the plan's order); an added outcome
    without an id is known by its position ("#3")."""
    return {(o.id or f"#{n}"): n for n, o in enumerate(plan.outcomes, start=1)}


def _shape_problems(state: CourseState, plan: CoursePlan) -> list[str]:
    problems: list[str] = []
    want = [f"S{i + 1}" for i in range(len(state.analysis.sections))]
    got = [s.id for s in plan.sections]
    if got != want:
        problems.append(
            f"sections: expected {', '.join(want)} in that order (sections are the input's), got {', '.join(got)}"
        )
    total, floor = sum(len(s.lessons) for s in plan.sections), state.analysis.min_lessons
    if total < floor:
        problems.append(
            f"sections: {total} lessons, the input asks for at least {floor} (min_lessons); "
            "phase 5 would pay for gap lessons to reach it"
        )
    ids = [o.id for o in plan.outcomes if o.id]
    if len(ids) != len(set(ids)):
        problems.append("outcomes: two outcomes share an id")
    known = _numbering(plan)
    taught: set[int] = set()
    for section in plan.sections:
        for n, lesson in enumerate(section.lessons, start=1):
            unknown = [o for o in lesson.outcomes if o not in known]
            if unknown:
                problems.append(
                    f"sections.{section.id}.lessons[{n - 1}] ({lesson.title!r}): unknown outcome(s) {', '.join(unknown)}"
                )
            taught.update(known[o] for o in lesson.outcomes if o in known)
    untaught = [o.id or f"#{n}" for n, o in enumerate(plan.outcomes, start=1) if n not in taught]
    if untaught:
        problems.append(f"outcomes: {', '.join(untaught)} taught by no lesson")
    return problems


def _as_draft(state: CourseState, plan: CoursePlan) -> MetadataCoreDraft:
    assert state.core is not None
    known = _numbering(plan)
    summaries = {s.id: s.summary for s in plan.sections}
    return MetadataCoreDraft.model_construct(
        course_title=plan.course_title,
        description=plan.description,
        learning_outcomes=[OutcomeDraft(text=o.text, bloom_level=o.bloom_level) for o in plan.outcomes],
        pedagogical_strategy=state.core.pedagogical_strategy,
        domain_taxonomy=list(state.core.domain_taxonomy),
        sections=[
            SectionPlanDraft.model_construct(
                summary=summaries.get(s.id) or (state.plans[i].summary if i < len(state.plans) else ""),
                lessons=[
                    LessonPlanDraft.model_construct(
                        title=lp.title, outcomes=[known[o] for o in lp.outcomes if o in known]
                    )
                    for lp in s.lessons
                ],
            )
            for i, s in enumerate(plan.sections)
        ],
    )


async def gate_plan(state: CourseState, plan: CoursePlan, ctx: PipelineContext) -> list[str]:
    """Why `plan` may not replace the state's plan ([]: it may): its shape (the input's
    sections in order, every outcome taught, no unknown outcome), then phase 2's own gates on
    the metadata (measurable outcomes at their Bloom level, no near-duplicates, every section
    the subject of an outcome, completeness, coherence and alignment). Embeddings only: free."""
    problems = _shape_problems(state, plan)
    if problems:
        return problems
    trial = CourseState(analysis=state.analysis, course_id=state.course_id, lesson_counts=_counts(plan))
    trial.core = state.core
    verdict = await _check_core(trial, _as_draft(state, plan), ctx, repair=False)
    return [] if verdict.passed else [verdict.feedback]


def _counts(plan: CoursePlan) -> list[int]:
    return [len(s.lessons) for s in plan.sections]


def apply_plan(state: CourseState, plan: CoursePlan) -> None:
    """Replace the state's title, description, outcomes and lessons with `plan`'s (checked by
    `gate_plan` first): outcomes numbered LO1.. in the plan's order, lessons S<n>-L<m>."""
    assert state.core is not None
    known = _numbering(plan)
    state.core = state.core.model_copy(
        update={"course_title": plan.course_title, "description": plan.description}
    )
    state.outcomes = [
        LearningOutcome(id=outcome_id(n), text=o.text, bloom_level=o.bloom_level)
        for n, o in enumerate(plan.outcomes, start=1)
    ]
    plans = []
    for si, section in enumerate(plan.sections):
        spec = state.analysis.sections[si]
        old = state.plans[si] if si < len(state.plans) else None
        plans.append(
            SectionPlan(
                id=f"S{si + 1}",
                title=spec.title,
                section_type=spec.section_type,
                summary=section.summary or (old.summary if old else ""),
                lessons=[
                    LessonPlan(
                        id=f"S{si + 1}-L{li + 1}",
                        title=lp.title,
                        outcome_ids=sorted({outcome_id(known[o]) for o in lp.outcomes}, key=outcome_number),
                    )
                    for li, lp in enumerate(section.lessons)
                ],
            )
        )
    state.plans = plans
    state.lesson_counts = _counts(plan)


class _EmbeddingsOnly:
    """Effects for checking a plan outside a run: embeddings, no model calls (a plan edit is
    gated for free)."""

    def __init__(self, embed: Callable[[Sequence[str]], Any]) -> None:
        self._embed = embed

    async def call(self, spec: CallSpec) -> CallResult:
        raise RuntimeError("checking a plan makes no model call")

    async def embed(self, texts: Sequence[str]) -> list[Vector]:
        return list(await self._embed(texts))

    def now_ms(self) -> float:
        return 0.0

    def budget_fraction(self) -> float:
        return 0.0

    async def run_blocking(self, fn: Callable[..., Any], *args: Any) -> Any:
        return fn(*args)


def embedding_context(
    settings: Any, embed: Callable[[Sequence[str]], Any], budget_usd: Decimal
) -> PipelineContext:
    """A pipeline context that can embed but not call a model: for `gate_plan` and `plan_of`
    outside a run (the CLI's `plan edit`, the service's plan endpoint)."""
    return PipelineContext(settings, _EmbeddingsOnly(embed), budget_usd)


def plan_record(state: CourseState, plan: CoursePlan) -> dict[str, Any]:
    """What a job keeps of a plan checkpoint: the plan, and the metadata beside it that a later
    edit is gated and estimated with (`state_from_record`)."""
    assert state.core is not None
    return {
        "state": "review",
        "plan": plan.model_dump(mode="json"),
        "core": state.core.model_dump(mode="json"),
        "extras": state.extras.model_dump(mode="json") if state.extras else None,
    }


D = TypeVar("D", MetadataCoreDraft, MetadataExtrasDraft)


def _revive(kind: type[D], data: dict[str, Any]) -> D:
    """A stored draft back (validated; a rule-built one, outside the model bounds, as it was)."""
    try:
        return kind.model_validate(data)
    except ValidationError:
        return kind.model_construct(**data)


def state_from_record(analysis: AnalysisResult, course_id: str, record: dict[str, Any]) -> CourseState:
    """The course state a stored plan describes (enough to gate, apply and estimate an edit)."""
    plan = CoursePlan.model_validate(record["plan"])
    state = CourseState(analysis=analysis, course_id=course_id, lesson_counts=_counts(plan))
    state.core = _revive(MetadataCoreDraft, record["core"])
    if record.get("extras"):
        state.extras = _revive(MetadataExtrasDraft, record["extras"])
    apply_plan(state, plan)
    return state


async def plan_checkpoint(state: CourseState, ctx: PipelineContext) -> bool:
    """After phase 2: True when the run stops here for an author (`state.plan_stop` holds the
    plan); an approved plan is re-gated (a refusal stops here again, with its problems) and
    applied, and the run goes on. With `PlanControl.wait` (Temporal) the run does not stop: it
    waits for the author's plan, gates it, and waits again while the gates refuse it."""
    control = ctx.plan
    if control is None:
        return False
    spent = Decimal(str(ctx.effects.budget_fraction())) * ctx.budget_usd
    approved = control.approved
    if approved is None and not control.review:
        return False
    record = None if approved is not None else plan_record(state, plan_of(state, ctx, spent_usd=spent))
    while True:
        if approved is not None:
            problems = await gate_plan(state, approved, ctx)
            if not problems:
                apply_plan(state, approved)
                return False
            shown = approved.model_copy(update={"problems": problems})
            record = {**plan_record(state, shown), "problems": problems}
        assert record is not None
        if control.wait is None:
            state.plan_stop = record
            return True
        ctx.progress(ProgressEvent("metadata", "info", "waiting for the plan review"))
        approved = await control.wait(record)
