"""Phase 5: completeness. At least `min_lessons` usable lessons, every section with
lessons, every outcome taught by a lesson and assessed by an exercise. Each of at most
`routing.completeness_rounds` rounds regenerates the failed slots, sends back the lessons whose
outcome nobody assesses, and, when the course would still be short of `min_lessons` or an
outcome would still be taught by no lesson, has the gaps identified on the mid tier
(`gates.completeness.gap_tier`) and generates the missing lessons through phase 3. What is still
missing after that fails the course (too few lessons, an empty section) or is flagged for a
person (outcome gaps beyond the configured coverage).

Then the course-level checks: token bounds per lesson and per course, and the course's mean
lesson-to-outcome similarity; below its threshold, the lessons under it are regenerated once on
the top ladder tier (targeted regeneration), and what stays under it is flagged."""

from __future__ import annotations

import json
import statistics

from ..domain import LessonPlan, ReviewFlag
from ..domain.drafts import GapsDraft, json_schema_of
from ..domain.report import Decision
from ..domain.tasks import TaskId, lesson_key, outcome_number
from ..ledger.tokens import ESTIMATE, count_text_tokens
from ..providers import ChatRequest, Message
from ..quality.base import GateResult, uncertainty
from ..quality.course_gates import REPAIRED, CourseFacts, run_course_gates
from ..quality.coverage import SectionLessons, completeness_problems, outcome_problems
from ..quality.gates import thresholds_for
from ..routing import Policy, Verdict, next_tier, run_cascade
from .lessons import generate_lessons
from .parsing import parser_for
from .prompts import BRIEF_MARKER
from .state import CourseState, LessonSlot, PipelineContext, ProgressEvent

__all__ = [
    "check_completeness",
    "course_facts",
    "course_similarity",
    "coverage",
    "gap_messages",
    "identify_gaps",
    "lesson_tokens",
    "run_completeness",
]

_GAPS_SCHEMA = json_schema_of(GapsDraft)
#: A planned gap lesson: (section index, title, outcome numbers).
Gap = tuple[int, str, list[int]]


def coverage(state: CourseState) -> tuple[set[str], set[str]]:
    """(taught, assessed): the outcome ids the usable lessons teach and their exercises assess."""
    taught: set[str] = set()
    assessed: set[str] = set()
    for slot in state.usable_slots():
        assert slot.draft is not None
        taught.update(state.outcome_id(n) for n in slot.outcome_numbers)
        assessed.update(
            state.outcome_id(e.outcome) for e in slot.draft.exercises if 1 <= e.outcome <= len(state.outcomes)
        )
    return taught, assessed


def course_facts(state: CourseState) -> CourseFacts:
    """The course as the course gates (`quality.course_gates`) see it, from its usable lessons."""
    usable = state.usable_slots()
    taught, assessed = coverage(state)
    return CourseFacts(
        outcomes=state.outcomes,
        lessons=len(usable),
        min_lessons=state.analysis.min_lessons,
        empty_sections=[
            spec.title
            for si, spec in enumerate(state.analysis.sections)
            if not any(s.section_index == si for s in usable)
        ],
        taught=taught,
        assessed=assessed,
        sections=[
            SectionLessons(
                f"S{si + 1}",
                spec.title,
                spec.key_concepts,
                [s.draft.content for s in usable if s.section_index == si and s.draft is not None],
            )
            for si, spec in enumerate(state.analysis.sections)
        ],
    )


def check_completeness(state: CourseState) -> list[str]:
    """What is still missing, as reasons; empty when the course is complete."""
    facts = course_facts(state)
    problems = completeness_problems(
        lessons=facts.lessons, min_lessons=facts.min_lessons, empty_sections=facts.empty_sections
    )
    problems += outcome_problems([o.id for o in facts.outcomes], facts.taught, facts.assessed)
    return problems


def gap_messages(
    state: CourseState, needed: int, untaught: list[int], empty: list[int], feedback: str = ""
) -> list[Message]:
    """The gap planner's prompt; a rejected plan's feedback comes before the BRIEF block, which
    stays last (`prompts.parse_brief`)."""
    outline = [
        {
            "section": si + 1,
            "title": spec.title,
            "key_concepts": spec.key_concepts,
            "lessons": [s.title for s in state.slots_in(si) if s.status != "failed"],
        }
        for si, spec in enumerate(state.analysis.sections)
    ]
    outcomes = [{"number": n, "text": o.text} for n, o in enumerate(state.outcomes, start=1)]
    brief = {
        "task": "gaps",
        "topic": state.analysis.topic,
        "needed": needed,
        "untaught": untaught,
        "empty_sections": empty,
        "outcomes": outcomes,
        "sections": outline,
    }
    asks = [f"at least {needed} new lesson{'s' if needed != 1 else ''}"] if needed else []
    if untaught:
        asks.append(
            "lessons teaching outcomes " + ", ".join(str(n) for n in untaught) + " (nobody teaches them)"
        )
    if empty:
        asks.append("a lesson in each of sections " + ", ".join(str(n) for n in empty) + " (they have none)")
    text = (
        f"A course on {state.analysis.topic!r} is incomplete. Plan {'; '.join(asks)}. Each new "
        "lesson names its section number, a title distinct from the existing lessons, and the "
        "numbers of the outcomes it teaches (1-4, outcomes its section is about).\n\nOUTCOMES:\n"
        + "\n".join(f"{o['number']}. {o['text']}" for o in outcomes)
        + "\n\nSECTIONS AND THEIR LESSONS:\n"
        + json.dumps(outline, ensure_ascii=False)
        + (f"\n\nYour previous plan was rejected: {feedback}" if feedback else "")
        + f"\n\n{BRIEF_MARKER}\n{json.dumps(brief, ensure_ascii=False)}"
    )
    system = "You plan course structure. Answer with one JSON object only."
    return [Message("system", system), Message("user", text)]


def _rule_gaps(state: CourseState, needed: int, untaught: list[int], empty: list[int]) -> list[Gap]:
    """Gap lessons by rule when the gap call gave nothing usable: one per untaught outcome in the
    section its closest planned lesson is in, one per empty section, then the shortest sections."""
    gaps: list[Gap] = []
    for si in empty:
        spec = state.analysis.sections[si - 1]
        numbers = sorted({outcome_number(o) for lp in state.plans[si - 1].lessons for o in lp.outcome_ids})
        gaps.append((si - 1, f"{spec.title}: {spec.key_concepts[0]} (review)", numbers[:4] or [1]))
    for n in untaught:
        if any(n in g[2] for g in gaps):
            continue
        si = next((s.section_index for s in state.slots.values() if n in s.outcome_numbers), 0)
        gaps.append((si, f"{state.analysis.sections[si].title}: {state.outcomes[n - 1].text}"[:120], [n]))
    while len(gaps) < needed:
        si = min(
            range(len(state.plans)), key=lambda i: len(state.plans[i].lessons) + sum(g[0] == i for g in gaps)
        )
        spec = state.analysis.sections[si]
        k = len(state.plans[si].lessons) + sum(g[0] == si for g in gaps)
        numbers = sorted({outcome_number(o) for lp in state.plans[si].lessons for o in lp.outcome_ids})
        concept = spec.key_concepts[k % len(spec.key_concepts)]
        gaps.append((si, f"{spec.title}: {concept}, further practice (part {k + 1})", numbers[:4] or [1]))
    return gaps


async def identify_gaps(
    state: CourseState,
    ctx: PipelineContext,
    needed: int,
    untaught: list[int],
    empty: list[int],
    round_no: int,
) -> list[Gap]:
    """The lessons to add, planned by the gap tier (re-asked with what its plan missed), else by
    rule. Every untaught outcome and empty section gets a lesson and at least `needed` are
    planned; section and outcome numbers are checked against the course."""
    cfg = ctx.settings.gates.completeness
    tiers = ctx.settings.routing.tiers
    tier = cfg.gap_tier if cfg.gap_tier in tiers else ctx.settings.routing.ladder[0]
    n_sections, n_out = len(state.analysis.sections), len(state.outcomes)
    _, priority = ctx.priority_for("completeness", False)

    def build(tier_: str, attempt: int, feedback: str) -> ChatRequest:
        messages = gap_messages(state, needed, untaught, empty, feedback)
        return ChatRequest(
            messages,
            json_schema=_GAPS_SCHEMA,
            schema_name="gaps",
            max_tokens=min(ctx.settings.models[tiers[tier_]].max_output_tokens, 200 + 80 * max(needed, 1)),
            temperature=0.0,
            timeout_s=priority.timeout_s,
            tags={"phase": "completeness", "task": f"gaps/r{round_no}", "max_retries": str(priority.retries)},
        )

    async def check(draft: GapsDraft, _spec: object) -> Verdict:
        problems = []
        usable = [
            g
            for g in draft.lessons
            if 1 <= g.section <= n_sections and all(1 <= n <= n_out for n in g.outcomes)
        ]
        if len(usable) < len(draft.lessons):
            problems.append(f"sections are numbered 1-{n_sections} and outcomes 1-{n_out}")
        if len(usable) < needed:
            problems.append(f"{len(usable)} usable lessons planned, {needed} needed")
        missed = [n for n in untaught if not any(n in g.outcomes for g in usable)]
        if missed:
            problems.append(f"outcomes {missed} still taught by no lesson")
        bare = [si for si in empty if not any(g.section == si for g in usable)]
        if bare:
            problems.append(f"sections {bare} still have no lesson")
        return Verdict(not problems, score=0.0 if problems else 1.0, feedback="; ".join(problems))

    result = await run_cascade(
        phase="completeness",
        round=round_no,
        task=TaskId("gaps", round=round_no),
        start_tier=tier,
        policy=lambda: Policy(ladder=(tier,), max_attempts=2, escalate=False),
        build=build,
        parse=parser_for(GapsDraft),
        check=check,
        call=ctx.effects.call,
    )
    state.decisions += result.decisions
    if result.status == "accepted" and result.value is not None:
        return [(g.section - 1, g.title, sorted(set(g.outcomes))) for g in result.value.lessons][
            : cfg.max_gap_lessons
        ]
    state.decisions.append(
        Decision(task="gaps", action="fix", tier="", reason=f"gap plan by rule: {result.reason}")
    )
    return _rule_gaps(state, needed, untaught, empty)[: cfg.max_gap_lessons]


def _add_gap_slots(state: CourseState, gaps: list[Gap], round_no: int) -> list[LessonSlot]:
    added = []
    for si, title, numbers in gaps:
        plan = state.plans[si]
        lesson_id = f"S{si + 1}-L{len(plan.lessons) + 1}"
        plan.lessons.append(
            LessonPlan(id=lesson_id, title=title, outcome_ids=[state.outcome_id(n) for n in numbers])
        )
        slot = LessonSlot(id=lesson_id, section_index=si, title=title, outcome_numbers=numbers)
        slot.feedback = "This lesson was added to close a gap in the course: teach its outcomes fully."
        state.slots[lesson_id] = slot
        state.decisions.append(
            Decision(
                task=lesson_key(lesson_id),
                action="add_lesson",
                tier="",
                reason=f"gap lesson {title!r} teaching {', '.join(state.outcome_id(n) for n in numbers)}",
                inputs={"round": round_no, "section": si + 1},
            )
        )
        added.append(slot)
    return added


def _gaps_left(state: CourseState, todo: list[LessonSlot], round_no: int) -> tuple[int, list[int], list[int]]:
    """(lessons still needed, untaught outcome numbers, empty section numbers) if the slots in
    `todo` came back usable: what regeneration alone cannot close. A failed slot is hoped for
    only in the first round; one whose phase-5 regeneration failed already is not counted on."""
    hoped = {s.id for s in todo if s.status != "failed" or round_no == 1}
    hoped |= {s.id for s in state.usable_slots()}
    hopeful = [s for s in state.slots.values() if s.id in hoped]
    needed = max(0, state.analysis.min_lessons - len(hopeful))
    taught = {n for s in hopeful for n in s.outcome_numbers}
    untaught = [n for n in range(1, len(state.outcomes) + 1) if n not in taught]
    filled = {s.section_index for s in hopeful}
    empty = [si + 1 for si in range(len(state.analysis.sections)) if si not in filled]
    return needed, untaught, empty


def lesson_tokens(slot: LessonSlot) -> int:
    """Tokens of a lesson's text and exercises (`ledger.tokens`: a stated estimate)."""
    assert slot.draft is not None
    parts = [slot.draft.content] + [f"{e.question} {e.answer} {e.explanation}" for e in slot.draft.exercises]
    return sum(count_text_tokens(p) for p in parts)


def course_similarity(state: CourseState) -> tuple[float | None, dict[str, float]]:
    """(mean lesson-to-outcome similarity, per-lesson similarity) of the usable lessons."""
    scores = {
        s.id: g.score
        for s in state.usable_slots()
        for g in s.gates
        if g.gate == "similarity" and g.score is not None
    }
    return (statistics.fmean(scores.values()) if scores else None), scores


def _similarity_bar(ctx: PipelineContext) -> float:
    """The course's similarity bar: `gates.completeness.course_similarity[model]`, else the low
    end of the judge's borderline band (lessons the judge accepted there are accepted lessons,
    and a bar above them would flag a course of accepted lessons), else the pass mark."""
    gates = ctx.settings.gates
    bar = gates.completeness.course_similarity.get(gates.embedding_model)
    if bar is not None:
        return bar
    band = gates.judge.borderline.get(gates.embedding_model) if gates.judge.enabled else None
    return band[0] if band else thresholds_for(gates, gates.embedding_model).pass_at


async def _targeted_regeneration(state: CourseState, ctx: PipelineContext) -> None:
    """Overall similarity under the bar -> the lessons under it regenerated on
    the top tier, once; what is still under it (and the course) flagged."""
    bar = _similarity_bar(ctx)
    mean, scores = course_similarity(state)
    if mean is None or mean >= bar:
        return
    top = ctx.settings.routing.ladder[-1]
    low = [state.slots[i] for i, score in scores.items() if score < bar]
    for slot in low:
        slot.rounds += 1
        slot.floor_tier = top
        slot.feedback = (
            f"The course's lessons drift from their outcomes (mean similarity {mean:.2f} < {bar:.2f}); "
            "this lesson must teach exactly its outcomes."
        )
        state.decisions.append(
            Decision(
                task=lesson_key(slot.id),
                action="targeted_regeneration",
                tier=top,
                reason=f"course similarity {mean:.3f} < {bar:.3f}; this lesson {scores[slot.id]:.3f}",
            )
        )
    before = {s.id: (s.draft, s.status, s.gates, s.tier, s.model, s.reason) for s in low}
    await generate_lessons(state, ctx, low, "completeness", ctx.settings.routing.completeness_rounds + 1)
    for slot in low:
        # A regeneration that produced nothing (budget, provider) never loses the lesson it had.
        if slot.status == "failed" or slot.draft is None:
            slot.draft, slot.status, slot.gates, slot.tier, slot.model, slot.reason = before[slot.id]
            state.decisions.append(
                Decision(
                    task=lesson_key(slot.id),
                    action="keep",
                    tier=slot.tier,
                    reason="targeted regeneration produced no lesson: the earlier one is kept",
                )
            )
    after, _ = course_similarity(state)
    if after is not None and after < bar:
        gate = GateResult("course_similarity", False, after, threshold=bar)
        state.flags.append(
            ReviewFlag(
                target="course",
                reason=f"course similarity {after:.3f} < {bar:.3f} after targeted regeneration on {top}",
                gate="completeness",
                score=after,
                uncertainty=uncertainty([gate]),
            )
        )


def _token_bounds(state: CourseState, ctx: PipelineContext) -> None:
    cfg = ctx.settings.gates.completeness
    (lo, hi), (clo, chi) = cfg.lesson_tokens, cfg.course_tokens
    total = 0
    for slot in state.usable_slots():
        n = lesson_tokens(slot)
        total += n
        if not lo <= n <= hi:
            state.flags.append(
                ReviewFlag(
                    target=lesson_key(slot.id),
                    reason=f"{n} tokens, outside the bounds [{lo}, {hi}] ({ESTIMATE})",
                    gate="token_bounds",
                    score=float(n),
                )
            )
    state.decisions.append(
        Decision(
            task="course",
            action="accept" if clo <= total <= chi else "flag",
            tier="",
            reason=f"course lessons {total} tokens, bounds [{clo}, {chi}] ({ESTIMATE})",
        )
    )
    if not clo <= total <= chi:
        state.flags.append(
            ReviewFlag(
                target="course",
                reason=f"course lessons {total} tokens, outside the bounds [{clo}, {chi}] ({ESTIMATE})",
                gate="token_bounds",
                score=float(total),
            )
        )


async def run_completeness(state: CourseState, ctx: PipelineContext) -> CourseState:
    for round_no in range(1, ctx.settings.routing.completeness_rounds + 1):
        problems = check_completeness(state)
        failed = [s for s in state.slots.values() if s.status == "failed"]
        needed, untaught, empty = _gaps_left(state, failed, round_no)
        if not problems and not failed and not needed and not untaught:
            break
        ctx.progress(ProgressEvent("completeness", "info", f"round {round_no}: " + "; ".join(problems)))
        todo: list[LessonSlot] = []
        ladder = ctx.settings.routing.ladder
        for slot in failed:
            slot.rounds += 1
            slot.feedback = "An earlier attempt at this lesson failed; follow the brief exactly."
            slot.floor_tier = next_tier(ladder, slot.round_start_tier)
            todo.append(slot)
        _, assessed = coverage(state)
        retry_ids = {s.id for s in todo}
        for number, outcome in enumerate(state.outcomes, start=1):
            if outcome.id in assessed:
                continue
            # An outcome nobody assesses: the usable lesson teaching it goes back with that instruction.
            for slot in state.usable_slots():
                if number in slot.outcome_numbers and slot.id not in retry_ids:
                    slot.rounds += 1
                    slot.feedback = f"Include an exercise assessing outcome {number} ({outcome.text!r})."
                    todo.append(slot)
                    retry_ids.add(slot.id)
                    break
        for slot in todo:
            state.decisions.append(
                Decision(
                    task=lesson_key(slot.id),
                    action="regenerate",
                    tier="",
                    reason=slot.feedback,
                    inputs={"round": round_no},
                )
            )
        added: list[LessonSlot] = []
        needed, untaught, empty = _gaps_left(state, todo, round_no)
        if needed or untaught or empty:
            gaps = await identify_gaps(state, ctx, needed, untaught, empty, round_no)
            added = _add_gap_slots(state, gaps, round_no)
        if not todo and not added:
            break
        await generate_lessons(state, ctx, todo + added, "completeness", round_no)
    remaining = check_completeness(state)
    if len(state.usable_slots()) < state.analysis.min_lessons or any(
        "has no lessons" in p for p in remaining
    ):
        state.failure = "; ".join(remaining)
        return state
    await _targeted_regeneration(state, ctx)
    _token_bounds(state, ctx)
    remaining = check_completeness(state)
    # The finished course through the one list of course gates (`courseforge check` runs the
    # same): a gate phase 5 does not repair is flagged for a person as it is.
    verdicts = run_course_gates(course_facts(state), ctx.settings)
    state.flags += [
        ReviewFlag(
            target="course",
            reason="; ".join(v.reasons),
            gate=v.gate,
            score=v.score,
            uncertainty=uncertainty([v]),
        )
        for v in verdicts
        if not v.passed and v.gate not in REPAIRED
    ]
    # After repair, outcome gaps within the configured coverage (the share of outcomes that
    # must be taught and assessed) are logged, not flagged; below it, a person must look.
    gate = next(v for v in verdicts if v.gate == "outcome_coverage")
    within, share = gate.passed, gate.score or 0.0
    for problem in remaining:
        if within and problem.startswith("outcomes "):
            state.decisions.append(
                Decision(
                    task="course",
                    action="accept",
                    tier="",
                    reason=f"{problem} (coverage {share:.0%} within the configured "
                    f"{ctx.settings.gates.outcome_coverage:.0%})",
                )
            )
            continue
        state.flags.append(
            ReviewFlag(target="course", reason=problem, gate="completeness", uncertainty=uncertainty([gate]))
        )
    return state
