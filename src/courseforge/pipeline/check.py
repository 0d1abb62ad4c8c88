"""`courseforge check`: the gates on an existing course (generated or edited by a person),
generating nothing.

Each lesson goes through the same gate list as phase 3 (`quality.lesson_gates`), without the
LLM judge and without self-consistency (both need model calls: uncertain claims stay
uncertain); then the course-wide checks of phases 4 and 5: duplicates across lessons (the later
lesson is flagged) and the one list of course gates (`quality.course_gates`: well-formed
learning outcomes, outcome coverage, the completeness rules);
then cross-artifact consistency (`quality.cross_checks`).
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from ..config import Settings
from ..domain import AnalysisResult, Course, LessonGates, Report, ReviewFlag
from ..domain.quality import QualitySummary
from ..domain.tasks import lesson_key
from ..providers import Embedder
from ..quality.base import GateContext, GateResult, uncertainty
from ..quality.course_gates import CourseFacts, run_course_gates
from ..quality.coverage import SectionLessons
from ..quality.lesson_gates import LessonUnderTest, run_lesson_gates
from ..quality.redundancy import CourseLesson, RedundancyGate, course_duplicates, owner_of
from .assemble import draft_of, gate_score
from .context import excerpt_bounds, lesson_query, select_excerpts, source_index
from .course_checks import cross_artifact_flags
from .report_builder import quality_summary

__all__ = ["check_course", "check_one_lesson", "policy_of", "policy_text"]


def policy_of(settings: Settings) -> dict[str, Any]:
    """The policy a course is judged by: the profile, its word bounds and gate thresholds."""
    gates = settings.gates
    sim = gates.similarity.get(gates.embedding_model)
    return {
        "profile": settings.profile,
        "embedding_model": gates.embedding_model,
        "lesson_words": [gates.lesson_min_words, gates.lesson_max_words],
        "exercises": [gates.min_exercises, gates.max_exercises],
        "similarity": {"pass_at": sim.pass_at, "severe_below": sim.severe_below} if sim else None,
        "outcome_coverage": gates.outcome_coverage,
        "grounding_min_coverage": gates.grounding.min_coverage,
        "citation_min_coverage": gates.grounding.min_citation_coverage,
    }


def policy_text(settings: Settings) -> str:
    p = policy_of(settings)
    sim = p["similarity"]
    similarity = (
        f"similarity pass >= {sim['pass_at']:.2f}, severe < {sim['severe_below']:.2f}"
        if sim
        else "similarity: no thresholds"
    )
    words = p["lesson_words"]
    return (
        f"judged by the {p['profile']!r} profile's policy: lessons {words[0]}-{words[1]} words, "
        f"{similarity} ({p['embedding_model']}), outcome coverage >= {p['outcome_coverage']:.0%}, "
        f"grounding >= {p['grounding_min_coverage']:.0%}"
    )


async def _to_thread(fn: Any, *args: Any) -> Any:
    return await asyncio.to_thread(fn, *args)


def _flag(target: str, g: GateResult) -> ReviewFlag:
    return ReviewFlag(
        target=target, gate=g.gate, reason="; ".join(g.reasons), score=g.score, uncertainty=uncertainty([g])
    )


async def _lesson_results(
    course: Course,
    analysis: AnalysisResult,
    settings: Settings,
    embedder: Embedder,
    only: str | None = None,
) -> dict[str, list[GateResult]]:
    """Each lesson's (or only lesson `only`'s) phase-3 gate list, and redundancy across the
    course (the later lesson of a pair is flagged; `only` is compared with every other)."""
    outcomes = {o.id: o.text for o in course.metadata.learning_outcomes}
    number = {o.id: i + 1 for i, o in enumerate(course.metadata.learning_outcomes)}
    sources = {m.id: m.text for m in analysis.source_material}
    lessons = course.lessons()
    per_lesson: dict[str, list[GateResult]] = {}
    index = await source_index(analysis, embedder.embed) if sources else None
    section_of = {x.id: si for si, sec in enumerate(course.sections) for x in sec.lessons}
    taught_in = [{o for x in sec.lessons for o in x.outcome_ids} for sec in course.sections]
    # Outcome id -> the first lesson teaching it: `titled` similarity reads "title: outcome".
    titled_by: dict[str, str] = {}
    for x in lessons:
        for o in x.outcome_ids:
            titled_by.setdefault(o, x.title)
    for lesson in lessons:
        if only is not None and lesson.id != only:
            continue
        known = [o for o in lesson.outcome_ids if o in outcomes] or list(outcomes)
        shown = sources
        si = section_of[lesson.id]
        if index is not None and si < len(analysis.sections):
            # Graded against what generation showed the lesson: the same retrieval.
            query = lesson_query(
                analysis, si, lesson.title, [outcomes[o] for o in lesson.outcome_ids if o in outcomes]
            )
            picked = await select_excerpts(analysis, index, embedder.embed, query, *excerpt_bounds(settings))
            shown = {sid: text for sid, _, text in picked}
        under_test = LessonUnderTest(
            lesson_id=lesson.id,
            draft=draft_of(lesson, number),
            outcome_numbers=[number[o] for o in known],
            outcomes={o: outcomes[o] for o in known},
            sources=shown,
            # An exercise tagged with several outcomes assesses each of them.
            assessed=[[number[o] for o in e.outcome_ids if o in number] for e in lesson.exercises],
            rivals={o: t for o, t in outcomes.items() if o not in taught_in[si]},
            titles={**titled_by, **{o: lesson.title for o in known}},
        )
        per_lesson[lesson.id] = await run_lesson_gates(
            under_test, settings=settings, embedder=embedder, blocking=_to_thread
        )
    if len(lessons) > 1:
        dups = await course_duplicates(
            [CourseLesson(x.id, x.content, [e.question for e in x.exercises]) for x in lessons],
            embedder,
            settings.gates.redundancy,
        )
        for lesson in lessons:
            if lesson.id not in per_lesson:
                continue
            # An edited lesson repeating any other is its problem, whichever comes first.
            mine = [
                d for d in dups if owner_of(d.later) == lesson.id or (only and owner_of(d.earlier) == only)
            ]
            per_lesson[lesson.id].append(
                RedundancyGate().check(lesson, GateContext(values={"duplicates": mine}))
            )
    return per_lesson


async def check_one_lesson(
    course: Course, analysis: AnalysisResult, settings: Settings, embedder: Embedder, lesson_id: str
) -> list[GateResult]:
    """The gates of lesson `lesson_id` of `course` as `check_course` runs them (a reviewer's
    edit goes through the same gates as a generated lesson). KeyError: no such lesson."""
    return (await _lesson_results(course, analysis, settings, embedder, only=lesson_id))[lesson_id]


async def check_course(
    course: Course, analysis: AnalysisResult, settings: Settings, embedder: Embedder
) -> tuple[Report, list[ReviewFlag]]:
    """The gate report of `course` (made from `analysis`) and the flags a person should see."""
    lessons = course.lessons()
    per_lesson = await _lesson_results(course, analysis, settings, embedder)

    facts = CourseFacts(
        outcomes=course.metadata.learning_outcomes,
        lessons=len(lessons),
        min_lessons=analysis.min_lessons,
        empty_sections=[s.title for s in course.sections if not s.lessons],
        taught={o for x in lessons for o in x.outcome_ids},
        assessed={o for x in lessons for e in x.exercises for o in e.outcome_ids},
        sections=[
            SectionLessons(section.id, section.title, spec.key_concepts, [x.content for x in section.lessons])
            for section, spec in zip(course.sections, analysis.sections, strict=False)
        ],
    )
    course_results = run_course_gates(facts, settings)

    flags = [
        _flag(lesson_key(lid), g) for lid, results in per_lesson.items() for g in results if not g.passed
    ]
    flags += [_flag("course", g) for g in course_results if not g.passed]
    flags += await cross_artifact_flags(course, settings, embedder)
    gate_report = [
        LessonGates(
            lesson_id=lid, attempts=0, final_tier="", final_model="", gates=[gate_score(g) for g in results]
        )
        for lid, results in per_lesson.items()
    ]
    summary: dict[str, Any] = {
        "lessons": len(lessons),
        "course_gates": [gate_score(g).model_dump() for g in course_results],
        "flags": [f.model_dump() for f in flags],
        "embedding_model": embedder.name,
        # Which profile's policy (word bounds, thresholds) the verdicts above follow.
        "policy": policy_of(settings),
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
