"""`courseforge check` judges a course with the same gate list as generation."""

from __future__ import annotations

from courseforge.pipeline.check import check_course
from courseforge.providers.embeddings import CachedEmbedder, HashingEmbedder
from engine_helpers import example_analysis, hosted_settings, make_engine, scripted_models


async def test_check_reproduces_every_gate_verdict_of_generation() -> None:
    settings = hosted_settings()
    # The judge needs model calls, which check does not make: without it the lists must agree.
    gates = settings.gates.model_copy(
        update={"judge": settings.gates.judge.model_copy(update={"enabled": False})}
    )
    settings = settings.model_copy(update={"gates": gates})
    analysis = example_analysis("photosynthesis-sourced")  # sources: grounding and citations run too
    engine = make_engine(settings, scripted_models(settings))
    try:
        generated = await engine.generate(analysis)
    finally:
        await engine.aclose()
    assert generated.course is not None
    report, _ = await check_course(generated.course, analysis, settings, CachedEmbedder(HashingEmbedder()))

    def verdicts(lessons, skip=()):  # type: ignore[no-untyped-def]
        return {
            lg.lesson_id: [
                (g.gate, g.passed, round(g.score, 6) if g.score is not None else None)
                for g in lg.gates
                if g.gate not in skip
            ]
            for lg in lessons
        }

    written = {x.id for x in generated.course.lessons()}
    # Self-consistency (on for the hosted profile's critical lessons) needs samples: generation only.
    at_generation = {
        k: v for k, v in verdicts(generated.report.lessons, skip=("consistency",)).items() if k in written
    }
    at_check = verdicts(report.lessons, skip=("redundancy",))  # course-wide: phase 4's business
    assert at_check == at_generation
    names = {g for gates in at_check.values() for g, _, _ in gates}
    assert {"length", "exercises", "similarity", "exercise_outcomes", "safety", "grounding"} <= names
