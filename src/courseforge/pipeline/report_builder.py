"""The generation report, built in one place: totals, the critical path, every summary and
quality figure. docs/report.md defines each figure; tests/pipeline/test_report_builder.py works them
out by hand on a small course.

Every runner (in-process, durable job, Temporal workflow) and `courseforge check` build their
report here, so a figure means the same wherever it was made.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from ..config import Settings
from ..domain import CallRecord, Course, Decision, LessonGates, Report
from ..domain.quality import QualitySummary
from ..domain.tasks import TaskId, lesson_of, subject_kind
from ..ledger import Ledger
from ..routing import tier_rank
from .assemble import gate_score, lesson_gate_report
from .bank import bank_figures
from .state import CourseState

__all__ = [
    "build_report",
    "critical_path",
    "critical_path_s",
    "lesson_rates",
    "quality_summary",
    "recompute_totals",
]


def _rate(count: int, of: int) -> float | None:
    return round(count / of, 4) if of else None


def lesson_rates(lessons: Sequence[LessonGates], ladder: Sequence[str]) -> dict[str, Any]:
    """The per-lesson rates (docs/report.md): first-attempt pass, escalation."""
    n = len(lessons)
    first = sum(1 for lg in lessons if lg.status == "accepted" and lg.attempts == 1)
    escalated = sum(
        1
        for lg in lessons
        if lg.start_tier
        and lg.final_tier
        and tier_rank(ladder, lg.final_tier) > tier_rank(ladder, lg.start_tier)
    )
    return {
        "first_attempt_pass_rate": _rate(first, n),
        "escalation_rate": _rate(escalated, n),
        "lessons_escalated": escalated,
    }


def _mean(values: Sequence[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def quality_summary(
    lessons: Sequence[LessonGates],
    decisions: Sequence[Decision],
    course: Course | None,
    flags: int,
    ladder: Sequence[str] = (),
) -> dict[str, Any]:
    """The seeds' per-course figures and the judge's bookkeeping, for `Report.quality`."""
    sims = [g.score for lg in lessons for g in lg.gates if g.gate == "similarity" and g.score is not None]
    comps = [g.score for lg in lessons for g in lg.gates if g.gate == "judge" and g.score is not None]
    samples = [d for d in decisions if d.action in ("judge_sample", "judge_calibration")]
    judged = [d for d in decisions if d.action == "judge"]
    referenced = [
        d
        for d in samples
        if d.inputs.get("judge_passed") is not None and d.inputs.get("strong_passed") is not None
    ]
    reviewed = {f.target for f in course.review} if course else set()
    lesson_reviews = sum(1 for t in reviewed if lesson_of(t) is not None)

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
    rates = lesson_rates(lessons, ladder)
    gate_failures: dict[str, int] = defaultdict(int)
    for lg in lessons:
        for g in lg.gates:
            if not g.passed:
                gate_failures[g.gate] += 1
    support = [g.score for lg in lessons for g in lg.gates if g.gate == "grounding" and g.score is not None]
    cited = [
        g.score for lg in lessons for g in lg.gates if g.gate == "citation_coverage" and g.score is not None
    ]
    return {
        "similarity_mean": _mean(sims),
        # Grounding: the share of claims the sources support, and apart from it the share
        # backed by a source the lesson cites (citation coverage).
        "grounding_support_mean": _mean(support),
        "citation_coverage_mean": _mean(cited),
        "composite_mean": _mean(
            [*comps, *(d.inputs["judge_composite"] for d in samples if d.inputs.get("judge_composite"))]
        ),
        "first_attempt_pass_rate": rates["first_attempt_pass_rate"],
        "escalation_rate": rates["escalation_rate"],
        "human_review_rate": _rate(lesson_reviews, len(lessons)),
        "review_flags": flags,
        "judge_calls": len(judged),
        "judge_sample": len(samples),
        "judge_vs_gate_disagreements": sum(
            disagree(d, "judge_passed", "gates_passed") for d in [*judged, *samples]
        ),
        "judge_vs_strong_disagreements": sum(disagree(d, "judge_passed", "strong_passed") for d in samples),
        # The judge's calibration: the gating judge against the reference judge, on the sampled
        # lessons both answered for (None: no such lesson in this course).
        "judge_reference_samples": len(referenced),
        "judge_reference_disagreement_rate": _rate(
            sum(disagree(d, "judge_passed", "strong_passed") for d in referenced), len(referenced)
        ),
        "gate_failures": dict(sorted(gate_failures.items())),
        "ungrounded_claims": ungrounded,
    }


def critical_path_s(records: Sequence[CallRecord], decisions: Sequence[Decision]) -> float:
    """The longest chain of calls that had to follow each other (docs/report.md), in seconds."""
    return critical_path(records, decisions)[0]


def critical_path(records: Sequence[CallRecord], decisions: Sequence[Decision]) -> tuple[float, list[int]]:
    """The longest chain of calls that had to follow each other, and the indexes in `records`
    of the calls on it (the dashboard marks them).

    Stages (a phase in one round) follow one another. Within a stage every task runs
    concurrently; a task's chain is its attempts in order, each attempt as long as the slowest
    of its self-consistency samples (each sample's fallback tries in sequence), followed by the
    judge calls on the lesson's texts (the judge and the stronger judge of one text run
    together). A lesson only in the calibration sample is judged beside the later stages: it
    forms its own path (the stages before its own, its chain, then the judge)."""
    Leg = tuple[float, list[int]]  # milliseconds, the calls

    def leg() -> list[Any]:
        return [0.0, []]

    def add(a: Leg, b: Leg) -> Leg:
        return a[0] + b[0], a[1] + b[1]

    def longest(legs: Any) -> Leg:
        return max(legs, key=lambda x: x[0], default=(0.0, []))

    # stage -> chain -> attempt -> sample -> [ms, calls]
    tries: dict[tuple[str, int], dict[str, dict[int, dict[int, list[Any]]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(lambda: defaultdict(leg)))
    )
    judged: dict[tuple[tuple[str, int], str, str], Leg] = {}
    calibration = {lesson_of(d.task) for d in decisions if d.action == "judge_calibration"}
    for i, r in enumerate(records):
        if r.outcome == "cancelled":
            continue  # a hedge leg that lost ran beside the one that answered
        stage = (r.phase, r.round)
        try:
            task = TaskId.parse(r.task)
        except ValueError:
            slot = tries[stage][r.task][r.attempt][0]
            slot[0] += r.latency_ms
            slot[1].append(i)
            continue
        if task.kind in ("judge", "judge_strong"):
            key = (stage, task.lesson, task.digest)
            if key not in judged or r.latency_ms > judged[key][0]:
                judged[key] = (r.latency_ms, [i])
            continue
        chain = task.lesson or task.kind
        slot = tries[stage][chain][r.attempt][task.sample]
        slot[0] += r.latency_ms
        slot[1].append(i)
    chains: dict[tuple[str, int], dict[str, Leg]] = {}
    for stage, by_chain in tries.items():
        chains[stage] = {}
        for chain, attempts in by_chain.items():
            path: Leg = (0.0, [])
            for samples in attempts.values():
                path = add(path, longest((s[0], s[1]) for s in samples.values()))
            chains[stage][chain] = path
    side: list[tuple[tuple[str, int], str, Leg]] = []
    for (stage, lesson, _), judge in judged.items():
        if lesson in calibration:
            side.append((stage, lesson, judge))
        else:
            chains.setdefault(stage, {})
            chains[stage][lesson] = add(chains[stage].get(lesson, (0.0, [])), judge)
    stages = list(chains)  # in order of first record: the order the stages ran
    main: Leg = (0.0, [])
    for stage_chains in chains.values():
        main = add(main, longest(stage_chains.values()))
    paths = [main]
    for stage, lesson, judge in side:
        if stage in chains:
            before: Leg = (0.0, [])
            for s in stages[: stages.index(stage)]:
                before = add(before, longest(chains[s].values()))
            paths.append(add(add(before, chains[stage].get(lesson, (0.0, []))), judge))
    best = longest(paths)
    return best[0] / 1000, sorted(best[1])


def recompute_totals(report: Report) -> None:
    """Totals and money figures from the report's calls (after calls were appended to it)."""
    calls = report.calls
    report.total_cost_usd = sum((c.cost_usd for c in calls), Decimal(0))
    report.by_phase = Ledger.totals(calls, "phase")
    report.by_model = Ledger.totals(calls, "model")
    report.cache_hits = sum(1 for c in calls if c.cache_hit)
    report.summary.update(_money(calls))


def _price_check(calls: Sequence[CallRecord]) -> dict[str, dict[str, Any]]:
    """Per model, over the calls the provider billed (`usage.cost`): what it billed against what
    the price table (the config's or the synced prices file's) estimated for the same usage."""
    out: dict[str, dict[str, Any]] = {}
    for c in calls:
        if c.price_table_usd is None or c.replayed or c.cache_hit:
            continue
        row = out.setdefault(c.model, {"calls": 0, "billed_usd": Decimal(0), "price_table_usd": Decimal(0)})
        row["calls"] += 1
        row["billed_usd"] += c.cost_usd
        row["price_table_usd"] += c.price_table_usd
    for row in out.values():
        billed, table = row["billed_usd"], row["price_table_usd"]
        row["billed_over_table"] = round(float(billed / table), 4) if table else None
        row["billed_usd"], row["price_table_usd"] = float(billed), float(table)
    return dict(sorted(out.items()))


def _money(calls: Sequence[CallRecord]) -> dict[str, Any]:
    replayed = [c for c in calls if c.replayed]
    replayed_cost = sum((c.cost_usd for c in replayed), Decimal(0))
    total = sum((c.cost_usd for c in calls), Decimal(0))
    return {
        "replayed_calls": len(replayed),
        "replayed_cost_usd": float(replayed_cost),
        "paid_this_run_usd": float(total - replayed_cost),
        "cache_hits": sum(1 for c in calls if c.cache_hit),
        "cache_saved_usd": float(sum((c.saved_usd for c in calls if c.cache_hit), Decimal(0))),
        "cached_input_tokens": sum(c.cached_tokens for c in calls if not c.cache_hit),
        "cache_write_tokens": sum(c.cache_write_tokens for c in calls if not c.cache_hit),
        # Output tokens reasoning models spent thinking (billed as output; inside output tokens).
        "reasoning_tokens": sum(c.reasoning_tokens for c in calls if not c.cache_hit),
        "calls_cut_at_max_tokens": sum(1 for c in calls if c.finish_reason == "length"),
        "prompt_cache_saved_usd": float(sum((c.saved_usd for c in calls if not c.cache_hit), Decimal(0))),
        "price_check": _price_check(calls),
        "batch_calls": sum(1 for c in calls if c.batch_id),
        "batches": len({c.batch_id for c in calls if c.batch_id}),
    }


def build_report(
    state: CourseState,
    course: Course | None,
    ledger: Ledger,
    settings: Settings,
    *,
    wall_s: float,
    transport_retries: int,
    faults: dict[str, int] | None = None,
) -> Report:
    records = list(ledger.records)
    decisions = state.decisions
    ladder = settings.routing.ladder
    lessons = lesson_gate_report(state)
    flags = len(course.review) if course else len(state.flags)
    quality = quality_summary(lessons, decisions, course, flags, ladder)
    kind_of = {d.task: subject_kind(d.task) for d in decisions}
    escalations = [d for d in decisions if d.action == "escalate"]
    summary: dict[str, Any] = {
        "lessons": sum(len(s.lessons) for s in course.sections) if course else len(state.usable_slots()),
        "similarity_mean": quality["similarity_mean"],
        **lesson_rates(lessons, ladder),
        "metadata_escalations": sum(1 for d in escalations if kind_of[d.task].startswith("metadata")),
        # Phase 2's quality gate on the accepted metadata: completeness, coherence, alignment.
        "metadata_gates": [gate_score(g).model_dump(mode="json") for g in state.metadata_gates],
        "judge_escalations": sum(1 for d in escalations if kind_of[d.task].startswith("judge")),
        "same_tier_retries": sum(1 for d in decisions if d.action == "retry"),
        "fallbacks": sum(1 for d in decisions if d.action == "fallback"),
        "rejected_calls": sum(1 for r in records if r.outcome == "rejected"),
        "peak_committed_usd": float(ledger.peak_committed),
        "calls_by_tier": dict(
            sorted({r.tier: sum(1 for x in records if x.tier == r.tier) for r in records}.items())
        ),
        **_money(records),
        **bank_figures(state, settings),
    }
    return Report(
        course_id=state.course_id,
        status=course.status if course else ("plan_review" if state.plan_stop is not None else "failed"),
        failure_reason=state.failure,
        profile=settings.profile,
        total_cost_usd=ledger.spent,
        budget_usd=ledger.cap_usd,
        phase_budget_usd=dict(ledger.phase_caps_usd),
        by_phase=Ledger.totals(records, "phase"),
        by_model=Ledger.totals(records, "model"),
        calls=records,
        decisions=list(decisions),
        escalations=len(escalations),
        retries=transport_retries,
        cache_hits=summary["cache_hits"],
        lessons=lessons,
        review_flags=flags,
        wall_time_s=round(wall_s, 3),
        sum_call_latency_s=round(sum(r.latency_ms for r in records) / 1000, 3),
        critical_path_s=round(critical_path_s(records, decisions), 3),
        summary=summary,
        quality=QualitySummary.model_validate(quality),
        faults=dict(sorted((faults or {}).items())),
    )
