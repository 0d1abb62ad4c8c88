"""`courseforge check`: the phase 4 and 5 gates on an existing course, generating nothing.

Runs every gate that needs no model call — length, exercises and answer keys, similarity,
safety, grounding (uncertain claims stay uncertain: there is no judge here), citations,
redundancy across lessons and exercises, the learning outcomes, outcome coverage and the
completeness rules — on a generated or hand-edited course, and returns a report and the flags.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from ..config import Settings
from ..domain import AnalysisResult, Course, GateScore, LessonGates, Report, ReviewFlag
from ..domain.quality import QualitySummary
from ..providers import Embedder
from ..quality.base import GateContext, GateResult
from ..quality.coverage import OutcomeCoverageGate
from ..quality.gates import OutcomesGate, evaluate_lesson
from ..quality.grounding import GroundingGate
from ..quality.redundancy import RedundancyGate, find_duplicates, text_vectors
from .course_quality import quality_summary
from .lesson_quality import lesson_claims, safety_gate

__all__ = ["check_course"]


def _score(g: GateResult) -> GateScore:
    return GateScore(gate=g.gate, passed=g.passed, score=g.score, verdict=g.verdict, reasons=list(g.reasons))


async def check_course(
    course: Course, analysis: AnalysisResult, settings: Settings, embedder: Embedder
) -> tuple[Report, list[ReviewFlag]]:
    gates = settings.gates
    safety = safety_gate(settings)
    outcomes = {o.id: o.text for o in course.metadata.learning_outcomes}
    sources = {m.id: m.text for m in analysis.source_material}
    lessons = course.lessons()
    flags: list[ReviewFlag] = []
    per_lesson: dict[str, list[GateResult]] = {}
    for lesson in lessons:
        mine = {oid: outcomes[oid] for oid in lesson.outcome_ids if oid in outcomes} or outcomes
        results = await evaluate_lesson(lesson, mine, embedder, gates)
        if gates.safety.enabled:
            results.append(safety.check(lesson, GateContext()))
        if sources and gates.grounding.enabled:
            claims = await lesson_claims(lesson.content, sources, embedder, settings)
            grounding = GroundingGate(gates.grounding.min_coverage)
            results.append(grounding.check(lesson, GateContext(values={"grounding": claims})))
        unknown = [c.source_id for c in lesson.citations or [] if c.source_id not in sources]
        if unknown:
            results.append(
                GateResult("citations", False, None, [f"cites unknown source id(s) {unknown}"], "fail")
            )
        per_lesson[lesson.id] = results

    # Redundancy across the course: the later lesson of a pair is flagged.
    r = gates.redundancy
    if len(lessons) > 1:
        vectors = await text_vectors([x.content for x in lessons], embedder)
        dups = find_duplicates(
            [(x.id, x.content) for x in lessons],
            vectors,
            cosine_at=r.lesson_cosine.get(embedder.name, 0.92),
            lexical_at=r.lesson_lexical,
        )
        exercises = [(e.id, e.question, x.id) for x in lessons for e in x.exercises]
        if len(exercises) > 1:
            qvecs = await embedder.embed([q for _, q, _ in exercises])
            owner = {eid: lid for eid, _, lid in exercises}
            dups += [
                d
                for d in find_duplicates(
                    [(eid, q) for eid, q, _ in exercises],
                    qvecs,
                    cosine_at=r.exercise_cosine.get(embedder.name, 0.95),
                    lexical_at=r.exercise_lexical,
                    kind="exercise",
                )
                if owner[d.later] != owner[d.earlier]
            ]
            later_of = {d.later: owner.get(d.later, d.later) for d in dups}
        else:
            later_of = {d.later: d.later for d in dups}
        for lesson in lessons:
            mine_dups = [d for d in dups if later_of[d.later] == lesson.id]
            per_lesson[lesson.id].append(
                RedundancyGate().check(lesson, GateContext(values={"duplicates": mine_dups}))
            )

    course_results: list[GateResult] = [
        OutcomesGate().check(course.metadata.learning_outcomes, GateContext())
    ]
    taught = {o for x in lessons for o in x.outcome_ids}
    assessed = {o for x in lessons for e in x.exercises for o in e.outcome_ids}
    course_results.append(
        OutcomeCoverageGate(gates.outcome_coverage).check(
            course, GateContext(outcomes=outcomes, values={"taught": taught, "assessed": assessed})
        )
    )
    problems = []
    if len(lessons) < analysis.min_lessons:
        problems.append(f"{len(lessons)} lessons, minimum is {analysis.min_lessons}")
    problems += [f"section {s.title!r} has no lessons" for s in course.sections if not s.lessons]
    course_results.append(GateResult("completeness", not problems, float(len(lessons)), problems))

    for lid, results in per_lesson.items():
        for g in results:
            if not g.passed:
                flags.append(
                    ReviewFlag(
                        target=f"lesson:{lid}", gate=g.gate, reason="; ".join(g.reasons), score=g.score
                    )
                )
    for g in course_results:
        if not g.passed:
            flags.append(ReviewFlag(target="course", gate=g.gate, reason="; ".join(g.reasons), score=g.score))

    gate_report = [
        LessonGates(
            lesson_id=lid, attempts=0, final_tier="", final_model="", gates=[_score(g) for g in results]
        )
        for lid, results in per_lesson.items()
    ]
    summary: dict[str, Any] = {
        "lessons": len(lessons),
        "course_gates": [_score(g).model_dump() for g in course_results],
        "flags": [f.model_dump() for f in flags],
        "embedding_model": embedder.name,
    }
    quality = quality_summary(gate_report, [], None, len(flags))
    for key in ("first_attempt_pass_rate", "escalation_rate", "human_review_rate"):
        quality[key] = None  # nothing was generated here
    report = Report(
        course_id=course.course_id,
        status="needs_review" if flags else "approved",
        profile=settings.profile,
        budget_usd=Decimal(0),
        lessons=gate_report,
        review_flags=len(flags),
        summary=summary,
        quality=QualitySummary.model_validate(quality),
    )
    return report, flags
