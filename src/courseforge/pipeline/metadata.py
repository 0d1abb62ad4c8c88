"""Phase 2: metadata. Critical fields (outcomes, strategy, structure, taxonomy) on the premium
tier; non-critical fields (audience detail, prerequisites, time, style) cheap-first with
escalation, concurrently. Structure problems a rule can fix are fixed and logged; the rest go
back to the model as feedback."""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import Sequence
from typing import Any

from ..domain import Decision, LearningOutcome, LessonPlan, ReviewFlag, SectionPlan, SectionSpec
from ..domain.drafts import MAX_OUTCOMES, MetadataCoreDraft, MetadataExtrasDraft, OutcomeDraft, json_schema_of
from ..domain.tasks import TaskId, outcome_id
from ..errors import GenerationFailed
from ..providers import ChatRequest
from ..providers.embeddings import cosine
from ..quality.base import GateContext, GateResult
from ..quality.bloom import NOT_MEASURABLE, levels_of, main_verb
from ..quality.gates import OutcomesGate, thresholds_for
from ..quality.metadata_gates import MetadataFacts, run_metadata_gates
from ..routing import BLOOM_RANK, TaskResult, Verdict, run_cascade
from .context import fit_context, source_index
from .parsing import parser_for
from .prompts import metadata_core_messages, metadata_extras_messages
from .state import CourseState, PipelineContext

__all__ = ["metadata_quality", "run_metadata"]

_CORE_SCHEMA = json_schema_of(MetadataCoreDraft)
_EXTRAS_SCHEMA = json_schema_of(MetadataExtrasDraft)
_CRITICAL = "critical"


def core_schema(sections: int, *, exact: bool = False) -> dict[str, Any]:
    """The metadata schema narrowed to this course: at least one plan per section and, when the
    prompt asks for one outcome per section, at least that many outcomes (a grammar-constrained
    model then cannot return fewer). `exact` (a local, grammar-bound model) also caps them there:
    the offline model wrote 12 for 5 sections, 6 of them then dropped by rule as fitting no
    section, tokens spent for nothing. A hosted model keeps the room for extras (cut by rule,
    never refused) and its request stays the one stores already hold. A section the outcomes
    still miss gets one built by rule (`_add_section_outcomes`)."""
    schema = copy.deepcopy(_CORE_SCHEMA)
    props = schema["properties"]
    props["sections"]["minItems"] = max(
        props["sections"]["minItems"], min(sections, props["sections"]["maxItems"])
    )
    if 3 <= sections <= MAX_OUTCOMES:
        props["learning_outcomes"]["minItems"] = sections
        if exact:
            props["learning_outcomes"]["maxItems"] = sections
    return schema


def _max_tokens(ctx: PipelineContext, tier: str, wanted: int) -> int:
    model = ctx.settings.models[ctx.settings.routing.tiers[tier]]
    return min(model.max_output_tokens, wanted)


def _is_local(ctx: PipelineContext, tier: str) -> bool:
    return ctx.settings.models[ctx.settings.routing.tiers[tier]].local is not None


#: Opening verbs that ask for comprehension without saying how it shows; rewritten to "Explain".
_COMPREHENSION_VERBS = frozenset({"understand", "comprehend", "grasp"})
#: The lead-in given by rule to an outcome that opens with a verb Bloom's lists do not know
#: ("Repeat work using loops", "Read input from the user"), per its declared level; each lead-in's
#: verb is one of that level's measurable verbs, so the level stands.
#: What follows a non-measurable opener that names a doing: "Learn how to …", "Learn to …".
_HOW = ("how to ", "to ")
_LEAD_INS = {
    "remember": "Describe how to",
    "understand": "Explain how to",
    "apply": "Demonstrate how to",
    "analyze": "Examine how to",
    "evaluate": "Evaluate how to",
    "create": "Design a way to",
}


def _bare_verb(word: str) -> bool:
    """Whether `word` can be an imperative verb opening an outcome ("Repeat", "Read"), not a
    gerund, a past form or a plural noun ("Understanding matters ...", "Variables ...")."""
    lower = word.lower()
    return (
        word.isalpha()
        and not lower.endswith(("ing", "ed", "s"))
        and not any(lower.startswith(v) for v in NOT_MEASURABLE)
    )


def _fix_bloom_levels(state: CourseState, draft: MetadataCoreDraft) -> None:
    """A measurable verb filed under the wrong level is corrected by rule (and logged), not
    sent back: the verb is what the outcome asks of the learner. An outcome opening with
    "Understand ..." is reworded to "Explain ..." first (the measurable form of the same ask);
    one opening with a verb no Bloom list knows ("Repeat work using loops": the offline model's
    metadata was sent back for two such outcomes, a second call of minutes) is given its
    level's measurable lead-in ("Demonstrate how to repeat work using loops")."""
    for i, outcome in enumerate(draft.learning_outcomes, start=1):
        first, _, rest = outcome.text.strip().partition(" ")
        before = outcome.text
        how = next((rest[len(p) :] for p in _HOW if rest.lower().startswith(p)), "")
        if first.lower() in _COMPREHENSION_VERBS and rest:
            # "Understand how X works" asks the learner to explain it: measurable wording.
            outcome.text = f"Explain {rest}"
        elif first.lower() in NOT_MEASURABLE and how:
            # "Learn how to input data …" (session 4's demo: the metadata was asked again for it,
            # then flagged): what is learnt is a doing, so its level's lead-in asks for it.
            outcome.text = f"{_LEAD_INS[outcome.bloom_level]} {how}".strip()[:240]
        elif main_verb(outcome.text) is None and _bare_verb(first):
            lead = _LEAD_INS[outcome.bloom_level]
            outcome.text = f"{lead} {first.lower()} {rest}".strip()[:240]
        if outcome.text != before:
            state.decisions.append(
                Decision.fix(
                    "metadata_core",
                    f"outcome {i}: {first!r} is not measurable: {before!r} -> {outcome.text!r}",
                )
            )
        verb = main_verb(outcome.text)
        levels = levels_of(verb) if verb else []
        if levels and outcome.bloom_level not in levels:
            declared = BLOOM_RANK[outcome.bloom_level]
            level = min(levels, key=lambda lv: abs(BLOOM_RANK[lv] - declared))
            state.decisions.append(
                Decision.fix(
                    "metadata_core",
                    f"outcome {i}: '{verb}' is a {level} verb; level {outcome.bloom_level} -> {level}",
                )
            )
            outcome.bloom_level = level  # type: ignore[assignment]


def section_text(spec: SectionSpec) -> str:
    """What a section is about, for comparing outcomes and lessons with it by meaning."""
    return f"{spec.title}: {', '.join(spec.key_concepts)}"


async def _outcome_section_fit(
    state: CourseState, draft: MetadataCoreDraft, ctx: PipelineContext
) -> tuple[list[list[float]], float]:
    """Cosine of each outcome (rows) to each "section: key concepts" (columns), and the
    similarity gate's fit bar they are held to (`fit_at`, else its pass threshold)."""
    pass_at = thresholds_for(ctx.settings.gates, ctx.settings.gates.embedding_model).fit_bar
    texts = [o.text for o in draft.learning_outcomes]
    vectors = await ctx.effects.embed(texts + [section_text(s) for s in state.analysis.sections])
    outcome_vecs, section_vecs = vectors[: len(texts)], vectors[len(texts) :]
    return [[cosine(o, sv) for sv in section_vecs] for o in outcome_vecs], pass_at


async def _unfitted_sections(state: CourseState, draft: MetadataCoreDraft, ctx: PipelineContext) -> list[str]:
    """Sections no outcome is about. Their lessons would be handed the closest outcome anyway and
    then fail the similarity gate against it on every attempt, so a plan whose outcomes miss a
    section goes back to the model (one metadata call instead of many lesson calls). Measured with
    the lesson gate's own pass threshold; a section is compared by its title and key concepts.
    Only checked when one outcome per section is possible (at most MAX_OUTCOMES sections)."""
    sections = state.analysis.sections
    if len(sections) > MAX_OUTCOMES or not draft.learning_outcomes:
        return []
    fit, pass_at = await _outcome_section_fit(state, draft, ctx)
    problems = []
    for number, spec in enumerate(sections, start=1):
        best = max(row[number - 1] for row in fit)
        if best < pass_at:
            problems.append(
                f"section {number} ({section_text(spec)}) is the subject of no outcome "
                f"(closest {best:.2f} < {pass_at:.2f})"
            )
    return problems


async def _drop_surplus_outcomes(
    state: CourseState, draft: MetadataCoreDraft, ctx: PipelineContext
) -> list[Decision]:
    """Outcomes beyond the one per section asked for that fit no section (cosine to every
    "section: key concepts" below the similarity pass threshold, e.g. "write unit tests" in a
    course without testing) would be forced onto some lesson that cannot teach them and fail its
    similarity gate on every attempt. They are dropped by rule, least fitting first, never below
    one per section (or 3), each logged; lesson claims are renumbered."""
    sections = state.analysis.sections
    keep_at_least = max(3, len(sections))
    outcomes = draft.learning_outcomes
    if len(sections) > MAX_OUTCOMES or len(outcomes) <= keep_at_least:
        return []
    matrix, pass_at = await _outcome_section_fit(state, draft, ctx)
    fit = [max(row) for row in matrix]
    unfit = sorted((i for i in range(len(outcomes)) if fit[i] < pass_at), key=fit.__getitem__)
    dropped = set(unfit[: len(outcomes) - keep_at_least])
    if not dropped:
        return []
    renumber: dict[int, int] = {}
    for old_index in range(len(outcomes)):
        if old_index not in dropped:
            renumber[old_index + 1] = len(renumber) + 1
    fixes = [
        Decision.fix(
            "metadata",
            f"outcome {i + 1} {outcomes[i].text!r} fits no section "
            f"(closest {fit[i]:.2f} < {pass_at:.2f}) and is beyond one per section: dropped",
        )
        for i in sorted(dropped)
    ]
    draft.learning_outcomes = [o for i, o in enumerate(outcomes) if i not in dropped]
    for plan in draft.sections:
        for lp in plan.lessons:
            lp.outcomes = [renumber[n] for n in lp.outcomes if n in renumber]
    return fixes


def _per_model(table: dict[str, float], ctx: PipelineContext, default: float) -> float:
    return table.get(ctx.settings.gates.embedding_model, default)


def _mean_vector(vectors: Sequence[Sequence[float]]) -> list[float]:
    return [sum(col) / len(vectors) for col in zip(*vectors, strict=True)] if vectors else []


async def metadata_quality(
    state: CourseState, draft: MetadataCoreDraft, ctx: PipelineContext
) -> list[GateResult]:
    """The critical metadata measured and judged by the metadata gates
    (`quality/metadata_gates.py`, thresholds in `gates.metadata`). Measured here:

    - completeness: the share of each of the plan's checks met — every section planned, every key
      concept planned (named in an outcome, lesson title, summary or the taxonomy, or within the
      similarity pass mark of one of them by cosine), every outcome measurable (a Bloom verb) and
      mapped (claimed by a planned lesson);
    - coherence: cosine of title + description + strategy to the outcomes and section titles;
    - alignment: cosine of the outcomes (their mean vector) to the analysis' goals, topic and
      audience.
    Coherence and alignment thresholds are per embedding model (calibrated, docs/quality.md);
    a model without one is held to the similarity pass mark."""
    analysis = state.analysis
    sections = analysis.sections
    outcomes = draft.learning_outcomes
    plans = draft.sections[: len(sections)]
    planned_texts = [o.text for o in outcomes] + [lp.title for p in plans for lp in p.lessons]
    planned_texts += [p.summary for p in plans] + list(draft.domain_taxonomy)
    concepts = [c for spec in sections for c in spec.key_concepts]
    haystack = " ".join(planned_texts).lower()
    unnamed = [c for c in concepts if c.lower() not in haystack]
    pass_at = thresholds_for(ctx.settings.gates, ctx.settings.gates.embedding_model).fit_bar
    head = f"{draft.course_title}. {draft.description} {draft.pedagogical_strategy}"
    body = " ".join([o.text for o in outcomes] + [s.title for s in sections])
    goals = " ".join([analysis.topic, analysis.target_audience, *analysis.goals])
    texts = [head, body, goals] + [o.text for o in outcomes] + unnamed + planned_texts
    vectors = await ctx.effects.embed(texts)
    head_v, body_v, goals_v = vectors[0], vectors[1], vectors[2]
    k = 3
    outcome_vs = vectors[k : k + len(outcomes)]
    k += len(outcomes)
    unnamed_vs = vectors[k : k + len(unnamed)]
    planned_vs = vectors[k + len(unnamed) :]
    missing = [
        c
        for c, v in zip(unnamed, unnamed_vs, strict=True)
        if max((cosine(v, p) for p in planned_vs), default=0.0) < pass_at
    ]
    measurable = [o for o in outcomes if (verb := main_verb(o.text)) and levels_of(verb)]
    mapped = {n for p in plans for lp in p.lessons for n in lp.outcomes if 1 <= n <= len(outcomes)}
    checks = [
        (min(len(plans), len(sections)) / len(sections), f"{len(plans)} of {len(sections)} sections planned"),
        (
            (len(concepts) - len(missing)) / (len(concepts) or 1),
            f"key concepts not planned: {', '.join(missing[:6])}",
        ),
        (
            len(measurable) / (len(outcomes) or 1),
            f"{len(outcomes) - len(measurable)} outcomes without a measurable verb",
        ),
        (
            len(mapped) / (len(outcomes) or 1),
            f"outcomes mapped to no lesson: {sorted(set(range(1, len(outcomes) + 1)) - mapped)}",
        ),
    ]
    coherence = cosine(head_v, body_v)
    alignment = cosine(_mean_vector(outcome_vs), goals_v) if outcome_vs else 0.0
    return run_metadata_gates(MetadataFacts(checks, coherence, alignment), ctx.settings, pass_at)


def _concepts_phrase(concepts: Sequence[str]) -> str:
    if len(concepts) < 2:
        return "".join(concepts)
    return ", ".join(concepts[:-1]) + " and " + concepts[-1]


async def _add_section_outcomes(state: CourseState, draft: MetadataCoreDraft, ctx: PipelineContext) -> None:
    """A section no outcome is about gets one built by rule from its key concepts ("Explain X,
    Y and Z with a worked example", understand level), logged as a fix, instead of the whole
    metadata being asked again (a premium call of minutes on a local model) or the course
    ending in review. Its lessons are then placed on it by meaning like any other outcome."""
    sections = state.analysis.sections
    if len(sections) > MAX_OUTCOMES or not draft.learning_outcomes:
        return
    fit, pass_at = await _outcome_section_fit(state, draft, ctx)
    for number, spec in enumerate(sections, start=1):
        best = max(row[number - 1] for row in fit)
        if best >= pass_at or len(draft.learning_outcomes) >= MAX_OUTCOMES or not spec.key_concepts:
            continue
        text = f"Explain {_concepts_phrase(spec.key_concepts)} with a worked example"
        draft.learning_outcomes.append(OutcomeDraft(text=text[:240], bloom_level="understand"))
        state.decisions.append(
            Decision.fix(
                "metadata_core",
                f"section {number} ({section_text(spec)}) was the subject of no outcome (closest "
                f"{best:.2f} < {pass_at:.2f}): outcome {len(draft.learning_outcomes)} {text!r} "
                "built from its key concepts",
            )
        )


async def _check_core(
    state: CourseState, draft: MetadataCoreDraft, ctx: PipelineContext, *, repair: bool = True
) -> Verdict:
    """Phase 2's gates on a metadata draft. `repair`: a model's draft is first mended by rule
    (Bloom levels, lead-ins, section outcomes); an author's plan (`pipeline.plan.gate_plan`) is
    not: what the author wrote is checked as written, and refused with the reasons."""
    reasons: list[str] = []
    if repair:
        _fix_bloom_levels(state, draft)
        await _add_section_outcomes(state, draft, ctx)
    outcome_result = OutcomesGate().check(draft.learning_outcomes, GateContext())
    if not outcome_result.passed:
        reasons.extend(outcome_result.reasons)
    want = len(state.analysis.sections)
    if len(draft.sections) < want:
        reasons.append(f"course structure has {len(draft.sections)} sections, needs exactly {want}")
    unfitted = await _unfitted_sections(state, draft, ctx)
    if unfitted:
        reasons.append("; ".join(unfitted) + ": write one outcome per section about its key concepts")
    quality: list[GateResult] = []
    if ctx.settings.gates.metadata.enabled and draft.learning_outcomes:
        quality = await metadata_quality(state, draft, ctx)
        state.metadata_gates = quality
        # Each failed gate's reasons, then what its advice asks of the next attempt.
        reasons += [r for g in quality if not g.passed for r in (*g.reasons, g.advice) if r]
    score = quality[0].score if quality and quality[0].score is not None else 1.0
    if reasons:
        return Verdict(False, score=0.0, feedback="; ".join(reasons)[:600], details=outcome_result)
    return Verdict(True, score=score, details=outcome_result)


#: Per section, the lessons as planned: (title, valid outcome numbers, padded by rule?).
Planned = list[list[tuple[str, list[int], bool]]]


def _planned(state: CourseState, draft: MetadataCoreDraft) -> Planned:
    """The model's lessons cut or padded to the planned counts, outcome numbers filtered to the
    real outcomes (small models number lessons instead); a padded lesson teaches a key concept."""
    n_out = len(draft.learning_outcomes)
    out: Planned = []
    for si, (spec, plan) in enumerate(zip(state.analysis.sections, draft.sections, strict=False)):
        lessons = [
            (lp.title, sorted({n for n in lp.outcomes if 1 <= n <= n_out}), False)
            for lp in plan.lessons[: state.lesson_counts[si]]
        ]
        while len(lessons) < state.lesson_counts[si]:
            concept = spec.key_concepts[len(lessons) % len(spec.key_concepts)]
            lessons.append((f"{spec.title}: {concept}", [], True))
        out.append(lessons)
    return out


#: A lesson title this much closer (cosine) to another section than to its own is misplaced.
TITLE_MARGIN = 0.1


async def _retitle_misplaced(
    state: CourseState, draft: MetadataCoreDraft, ctx: PipelineContext
) -> list[Decision]:
    """Small models sometimes shift lesson titles by a section ("For loops" under "Making
    decisions"). A lesson writes about its title, so a misplaced title makes it miss its
    section's outcome on every attempt: such a title is replaced by rule with "<section>: <a key
    concept of the section no sibling title names>" (logged). So is a title about no section at
    all (its closest section below the similarity gate's severe threshold: "Arithmetic
    operations" under "Repeating work" drifted from its outcome on four attempts)."""
    sections = state.analysis.sections
    severe = thresholds_for(ctx.settings.gates, ctx.settings.gates.embedding_model).severe_below
    placed = [
        (si, li, lp.title)
        for si, plan in enumerate(draft.sections[: len(sections)])
        for li, lp in enumerate(plan.lessons[: state.lesson_counts[si]])
    ]
    if len(sections) < 2 or not placed:
        return []
    vectors = await ctx.effects.embed([section_text(s) for s in sections] + [t for _, _, t in placed])
    section_vecs, title_vecs = vectors[: len(sections)], vectors[len(sections) :]
    fixes = []
    for (si, li, title), vec in zip(placed, title_vecs, strict=True):
        scores = [cosine(vec, sv) for sv in section_vecs]
        other = max((j for j in range(len(sections)) if j != si), key=scores.__getitem__)
        misplaced = scores[other] >= scores[si] + TITLE_MARGIN
        if not misplaced and max(scores) >= severe:
            continue
        spec = sections[si]
        siblings = " ".join(lp.title.lower() for lp in draft.sections[si].lessons)
        unused = [c for c in spec.key_concepts if c.lower() not in siblings] or spec.key_concepts
        new = f"{spec.title}: {unused[0]}"
        draft.sections[si].lessons[li].title = new
        why = (
            f"is about section {other + 1} ({scores[other]:.2f} vs {scores[si]:.2f} for its own)"
            if misplaced
            else f"is about no section (closest {max(scores):.2f} < {severe:.2f})"
        )
        fixes.append(Decision.fix("metadata", f"S{si + 1}-L{li + 1} title {title!r} {why}: retitled {new!r}"))
    return fixes


#: A model-claimed outcome is kept when its cosine to the lesson is within this of the best
#: outcome's; further off, the claim is replaced by the best (small models number lessons).
CLAIM_MARGIN = 0.1


async def _placements(
    state: CourseState, draft: MetadataCoreDraft, ctx: PipelineContext
) -> tuple[dict[int, tuple[int, int]], dict[tuple[int, int], list[int]]]:
    """By meaning, never arbitrarily (a lesson handed an outcome it is not about can only fail its
    similarity gate): each lesson's claimed outcomes are checked against the closest outcome and
    replaced when implausible or missing; each outcome then taught by no lesson goes to the
    closest lesson that can still assess it (a lesson holds at most `gates.max_exercises`
    outcomes: one exercise each). Lessons are compared by their title, section and key concepts."""
    planned = _planned(state, draft)
    slots = [(si, li) for si, lessons in enumerate(planned) for li in range(len(lessons))]
    n_out = len(draft.learning_outcomes)
    if not slots or not n_out:
        return {}, {}
    lesson_texts = [f"{planned[si][li][0]}. {section_text(state.analysis.sections[si])}" for si, li in slots]
    vectors = await ctx.effects.embed([o.text for o in draft.learning_outcomes] + lesson_texts)
    outcome_vecs, lesson_vecs = vectors[:n_out], vectors[n_out:]

    # A lesson can assess at most `cap` outcomes (one per exercise), so it is never handed more.
    cap = max(1, ctx.settings.gates.max_exercises)
    reassigned: dict[tuple[int, int], list[int]] = {}
    for k, (si, li) in enumerate(slots):
        scores = [cosine(outcome_vecs[n], lesson_vecs[k]) for n in range(n_out)]
        best = max(range(n_out), key=scores.__getitem__)
        claimed = planned[si][li][1]
        kept = [n for n in claimed if scores[n - 1] >= scores[best] - CLAIM_MARGIN]
        kept = sorted(sorted(kept, key=lambda n: -scores[n - 1])[:cap])
        if kept != claimed or not kept:
            reassigned[(si, li)] = kept or [best + 1]
    load = [len(reassigned.get((si, li), planned[si][li][1])) for si, li in slots]
    taught = {n for k, (si, li) in enumerate(slots) for n in reassigned.get((si, li), planned[si][li][1])}
    to_lesson: dict[int, tuple[int, int]] = {}
    for n in range(1, n_out + 1):
        if n in taught:
            continue
        ranked = sorted(range(len(slots)), key=lambda k: -cosine(outcome_vecs[n - 1], lesson_vecs[k]))
        k = next((k for k in ranked if load[k] < cap), ranked[0])
        load[k] += 1
        to_lesson[n] = slots[k]
    return to_lesson, reassigned


def _normalise_structure(
    state: CourseState,
    draft: MetadataCoreDraft,
    placements: dict[int, tuple[int, int]] | None = None,
    reassigned: dict[tuple[int, int], list[int]] | None = None,
) -> list[Decision]:
    """Make the accepted structure match the plan exactly; log each rule-based fix."""
    fixes: list[Decision] = []
    n_out = len(draft.learning_outcomes)
    state.outcomes = [
        LearningOutcome(id=outcome_id(i + 1), text=o.text, bloom_level=o.bloom_level)
        for i, o in enumerate(draft.learning_outcomes)
    ]

    def fix(reason: str) -> None:
        fixes.append(Decision.fix("metadata", reason))

    plans: list[SectionPlan] = []
    used: set[int] = set()
    for si, (spec, lessons) in enumerate(zip(state.analysis.sections, _planned(state, draft), strict=False)):
        lesson_plans = []
        for li, (title, numbers, padded) in enumerate(lessons):
            lesson_id = f"S{si + 1}-L{li + 1}"
            if padded:
                fix(f"section {si + 1}: added lesson {title!r} to reach {state.lesson_counts[si]} lessons")
            if (si, li) in (reassigned or {}):
                before = numbers
                numbers = (reassigned or {})[(si, li)]
                fix(
                    f"{lesson_id} claimed outcomes {before or 'none valid'}: given "
                    f"{', '.join(f'LO{n}' for n in numbers)}, the closest in meaning"
                )
            elif not numbers:
                numbers = [1 + (li + si) % n_out]
                fix(f"{lesson_id} named no valid outcome: given LO{numbers[0]}")
            used.update(numbers)
            lesson_plans.append(
                LessonPlan(id=lesson_id, title=title, outcome_ids=[outcome_id(n) for n in numbers])
            )
        plan = draft.sections[si]
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
        target.outcome_ids.append(outcome_id(number))
        fix(f"outcome LO{number} was taught by no lesson: given to {target.id}")
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


async def _check_extras(state: CourseState, draft: MetadataExtrasDraft, ctx: PipelineContext) -> Verdict:
    """The non-critical fields' gate (cheap-first: failing it escalates a tier): a plausible
    time estimate, and audience detail and style guidelines about this course's audience
    and topic (cosine at `gates.metadata.extras` for the embedding model)."""
    analysis = state.analysis
    n_lessons = sum(state.lesson_counts)
    floor = 5 * n_lessons
    problems = []
    if draft.time_estimate_minutes < floor:
        problems.append(
            f"time estimate {draft.time_estimate_minutes} min is implausible for {n_lessons} lessons (at least {floor})"
        )
    bar = _per_model(ctx.settings.gates.metadata.extras, ctx, 0.0)
    if ctx.settings.gates.metadata.enabled:
        ref = f"{analysis.topic}. {analysis.target_audience}"
        vectors = await ctx.effects.embed([ref, draft.target_audience])
        fit = cosine(vectors[0], vectors[1])
        if fit < bar:
            problems.append(
                f"target audience {draft.target_audience!r} is not about this course's audience "
                f"({analysis.target_audience!r}; cosine {fit:.2f} < {bar:.2f})"
            )
    if problems:
        return Verdict(False, score=0.5, feedback="; ".join(problems)[:600])
    return Verdict(True, score=1.0)


async def _inputs_ahead(state: CourseState, ctx: PipelineContext) -> None:
    """Embed, while the metadata calls are out, what later steps embed from the input alone:
    each section's "title: key concepts" (the outcome and placement fits) and the source
    passages the lessons' excerpts are chosen from (`state.source_units`, set here as
    `lesson_excerpts` would). The same texts through the same embedder: only when they are
    embedded changes. A failure is left to the step that needs them."""
    analysis = state.analysis
    with contextlib.suppress(Exception):
        sections = ctx.effects.embed([section_text(s) for s in analysis.sections])
        if analysis.source_material and state.source_units is None:
            _, state.source_units = await asyncio.gather(sections, source_index(analysis, ctx.effects.embed))
        else:
            await sections


async def run_metadata(state: CourseState, ctx: PipelineContext) -> CourseState:
    routing = ctx.settings.routing
    analysis = state.analysis
    temperature = routing.temperature
    n_lessons = sum(state.lesson_counts)
    _, critical = ctx.priority_for("metadata", True)
    _, standard = ctx.priority_for("metadata", False)

    def build_core(tier: str, attempt: int, feedback: str) -> ChatRequest:
        # Room for the plan (a title per lesson) and one outcome per section: a cut-off answer is
        # a wasted premium call (seen at 1,350 tokens for 10 lessons in 6 sections).
        wanted = 1000 + 50 * n_lessons + 40 * len(analysis.sections)
        return ChatRequest(
            metadata_core_messages(analysis, state.lesson_counts, feedback),
            json_schema=core_schema(len(analysis.sections), exact=_is_local(ctx, tier)),
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

    # The critical fields on the premium tier, at most `metadata_max_attempts` (2)
    # attempts, then human review (the best attempt is kept and flagged).
    core_priority = critical.model_copy(update={"max_attempts": routing.metadata_max_attempts})

    # For metadata too: a prompt too large for its tier goes to the long-context tier.
    def fitted(task: str, tier: str, build: Any) -> str:
        probe = build(tier, 1, "")
        fitted_tier, moved = fit_context(ctx, tier, probe.messages, probe.max_tokens, task)
        if moved is not None:
            state.decisions.append(moved)
        return str(fitted_tier)

    core_tier = fitted("metadata_core", routing.metadata_tier, build_core)
    extras_tier = fitted("metadata_extras", routing.metadata_extras_tier, build_extras)
    core_task = run_cascade(
        phase="metadata",
        task=TaskId("metadata_core"),
        start_tier=core_tier,
        policy=ctx.policy(core_priority),
        build=build_core,
        parse=parser_for(MetadataCoreDraft),
        check=lambda d, _: _check_core(state, d, ctx),
        call=ctx.effects.call,
    )
    extras_task = run_cascade(
        phase="metadata",
        task=TaskId("metadata_extras"),
        start_tier=extras_tier,
        policy=ctx.policy(standard),
        build=build_extras,
        parse=parser_for(MetadataExtrasDraft),
        check=lambda d, _: _check_extras(state, d, ctx),
        call=ctx.effects.call,
    )
    core: TaskResult[MetadataCoreDraft]
    extras: TaskResult[MetadataExtrasDraft]
    ahead = asyncio.ensure_future(_inputs_ahead(state, ctx))
    try:
        core, extras = await asyncio.gather(core_task, extras_task)
    except BaseException:
        ahead.cancel()
        await asyncio.gather(ahead, return_exceptions=True)
        raise
    await ahead
    state.decisions += core.decisions + extras.decisions
    if core.value is None:
        raise GenerationFailed(f"metadata could not be generated: {core.reason}") from core.exhausted()
    state.core = core.value
    if core.status == "flagged":
        state.flags.append(
            ReviewFlag(
                target="metadata",
                reason=core.reason + ": " + (core.verdict.feedback if core.verdict else ""),
                gate="metadata",
            )
        )
    state.decisions += await _drop_surplus_outcomes(state, core.value, ctx)
    state.decisions += await _retitle_misplaced(state, core.value, ctx)
    to_lesson, reassigned = await _placements(state, core.value, ctx)
    state.decisions += _normalise_structure(state, core.value, to_lesson, reassigned)
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
