"""Phase 2's rules (seeds 000, 001): the non-critical fields on OSS 120B first, escalating when their
gate fails; the metadata quality gate (completeness, coherence, alignment) with per-embedding-
model thresholds, reported; two premium attempts, then human review."""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pytest

from courseforge.domain.drafts import MetadataCoreDraft
from courseforge.ledger import Ledger
from courseforge.pipeline import CourseState, PipelineContext, plan_lesson_counts, run_pipeline
from courseforge.pipeline.metadata import metadata_quality, run_metadata
from courseforge.pipeline.prompts import metadata_core_messages, parse_brief
from courseforge.providers import ChatRequest
from courseforge.testing import CourseAuthor, ScriptedModel
from engine_helpers import EmbedOnly, course_calls, example_analysis, hosted_settings


def _task(request: ChatRequest) -> str:
    return str(parse_brief(request.messages).get("task"))


def _rig(script: Any, settings: Any = None):  # type: ignore[no-untyped-def]
    settings = settings or hosted_settings()
    analysis = example_analysis()
    models = {m: ScriptedModel(script, model_id=m) for m in settings.models}
    ledger = Ledger(Decimal("5"))
    ctx = PipelineContext(settings, course_calls(settings, models, ledger), Decimal("5"))
    state = CourseState(analysis=analysis, course_id="m", lesson_counts=plan_lesson_counts(analysis))
    return state, ctx, ledger


def _tier(settings: Any, model: str) -> str:
    return next(t for t, m in settings.routing.tiers.items() if m == model)


async def test_extras_start_on_oss_120b_and_escalate_when_their_gate_fails() -> None:
    settings = hosted_settings()
    assert settings.routing.metadata_extras_tier == "mid"  # seed 000: "try_OSS_120B_first"
    first = settings.routing.tiers["mid"]
    author = CourseAuthor()

    def script_for(model_id: str):  # type: ignore[no-untyped-def]
        def script(request: ChatRequest) -> str:
            text = author(request)
            if _task(request) == "metadata_extras" and model_id == first:
                data = json.loads(text)
                data["target_audience"] = "Gardeners planning a vegetable patch for the spring."
                return json.dumps(data)
            return text

        return script

    models = {m: ScriptedModel(script_for(m), model_id=m) for m in settings.models}
    ledger = Ledger(Decimal("5"))
    ctx = PipelineContext(settings, course_calls(settings, models, ledger), Decimal("5"))
    analysis = example_analysis()
    state = CourseState(analysis=analysis, course_id="m", lesson_counts=plan_lesson_counts(analysis))
    await run_metadata(state, ctx)
    extras = [r for r in ledger.records if r.task == "metadata_extras"]
    tiers = [_tier(settings, r.model) for r in extras]
    assert tiers[0] == "mid" and extras[0].outcome == "rejected"
    assert extras[-1].outcome == "ok" and tiers[-1] == "premium"
    assert state.extras is not None and "Gardeners" not in state.extras.target_audience


async def test_plain_extras_cost_one_oss_120b_call() -> None:
    state, ctx, ledger = _rig(CourseAuthor())
    await run_metadata(state, ctx)
    extras = [r for r in ledger.records if r.task == "metadata_extras"]
    assert [(_tier(ctx.settings, r.model), r.outcome) for r in extras] == [("mid", "ok")]


async def test_unmapped_outcomes_fail_completeness_twice_on_premium_then_review() -> None:
    author = CourseAuthor()

    def script(request: ChatRequest) -> str:
        text = author(request)
        if _task(request) == "metadata_core":
            data = json.loads(text)
            for section in data["sections"]:
                for lesson in section["lessons"]:
                    lesson["outcomes"] = [1]  # every lesson claims outcome 1: the rest map to none
            return json.dumps(data)
        return text

    state, ctx, ledger = _rig(script)
    await run_metadata(state, ctx)
    core = [r for r in ledger.records if r.task == "metadata_core"]
    assert [(_tier(ctx.settings, r.model), r.outcome) for r in core] == [("premium", "rejected")] * 2
    [flag] = [f for f in state.flags if f.target == "metadata"]
    assert "outcomes mapped to no lesson" in flag.reason
    completeness = next(g for g in state.metadata_gates if g.gate == "metadata_completeness")
    assert not completeness.passed and completeness.score is not None and completeness.score < 0.85


class KeywordEmbedder:
    """Texts mentioning python/loops point one way, plants/light the other (a stand-in whose
    cosines a test can predict)."""

    name = "hashing"

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        out = []
        for t in texts:
            low = t.lower()
            a = sum(low.count(w) for w in ("python", "loop", "dictionar", "function", "variable", "print"))
            b = sum(low.count(w) for w in ("plant", "light", "leaf", "garden", "soil", "sugar"))
            out.append([float(a) + 0.01, float(b) + 0.01, 0.05])
        return out


def _gated(**thresholds: Any):  # type: ignore[no-untyped-def]
    settings = hosted_settings()
    meta = settings.gates.metadata.model_copy(update=thresholds)
    return settings.model_copy(update={"gates": settings.gates.model_copy(update={"metadata": meta})})


async def test_coherence_and_alignment_catch_another_courses_text() -> None:
    settings = _gated(coherence={"hashing": 0.6}, alignment={"hashing": 0.6})
    ctx = PipelineContext(settings, EmbedOnly(KeywordEmbedder()), Decimal(1))  # type: ignore[arg-type]
    analysis = example_analysis()
    state = CourseState(analysis=analysis, course_id="m", lesson_counts=plan_lesson_counts(analysis))
    brief = parse_brief(metadata_core_messages(analysis, state.lesson_counts, ""))
    good = MetadataCoreDraft.model_validate(CourseAuthor().metadata_core(brief))
    results = {g.gate: g for g in await metadata_quality(state, good, ctx)}
    assert all(g.passed for g in results.values()), results
    garden = "Plants, light, soil and sugar: a garden course about how a leaf makes sugar from light."
    off = good.model_copy(
        update={"description": garden, "pedagogical_strategy": garden, "course_title": "Garden plants"}
    )
    results = {g.gate: g for g in await metadata_quality(state, off, ctx)}
    assert not results["metadata_coherence"].passed and results["metadata_alignment"].passed
    assert "disagree with the outcomes" in results["metadata_coherence"].reasons[0]
    outcomes = [
        o.model_copy(update={"text": f"Explain how a plant leaf uses light {i}"})
        for i, o in enumerate(good.learning_outcomes)
    ]
    stray = good.model_copy(update={"learning_outcomes": outcomes})
    results = {g.gate: g for g in await metadata_quality(state, stray, ctx)}
    assert not results["metadata_alignment"].passed


async def test_metadata_gates_are_in_the_report() -> None:
    state, ctx, _ = _rig(CourseAuthor())
    result = await run_pipeline(state.analysis, "m", ctx)
    assert {g.gate for g in result.state.metadata_gates} == {
        "metadata_completeness",
        "metadata_coherence",
        "metadata_alignment",
    }
    from courseforge.pipeline.report_builder import build_report

    report = build_report(
        result.state, result.course, ctx.effects.ledger, ctx.settings, wall_s=0, transport_retries=0
    )  # type: ignore[attr-defined]
    gates = {g["gate"]: g for g in report.summary["metadata_gates"]}
    assert gates["metadata_completeness"]["passed"] and gates["metadata_completeness"]["threshold"] == 0.85


# -- calibration (docs/quality.md's table) ------------------------------------------------------


async def calibration_rows(model: str) -> list[tuple[str, str, dict[str, float]]]:
    """(kind, example, {score: value}) for the three examples' metadata as CourseAuthor writes
    it ("good") and with another example's title and description ("bad-head") or outcomes
    ("bad-outcomes") swapped in, gated with embedding model `model`."""
    from courseforge.providers.embeddings import make_embedder

    base = hosted_settings()
    settings = base.model_copy(update={"gates": base.gates.model_copy(update={"embedding_model": model})})
    ctx = PipelineContext(settings, EmbedOnly(make_embedder(model)), Decimal(1))  # type: ignore[arg-type]
    names = ["python-basics", "photosynthesis-sourced", "spanish-a1"]
    drafts, states = {}, {}
    for n in names:
        analysis = example_analysis(n)
        states[n] = CourseState(analysis=analysis, course_id="c", lesson_counts=plan_lesson_counts(analysis))
        brief = parse_brief(metadata_core_messages(analysis, states[n].lesson_counts, ""))
        drafts[n] = MetadataCoreDraft.model_validate(CourseAuthor().metadata_core(brief))
    variants: list[tuple[str, str, MetadataCoreDraft]] = []
    for i, n in enumerate(names):
        other = drafts[names[(i + 1) % len(names)]]
        variants.append(("good", n, drafts[n]))
        head = {"course_title": other.course_title, "description": other.description}
        variants.append(("bad-head", n, drafts[n].model_copy(update=head)))
        variants.append(
            ("bad-outcomes", n, drafts[n].model_copy(update={"learning_outcomes": other.learning_outcomes}))
        )
    rows = []
    for kind, n, draft in variants:
        scores = {
            g.gate.removeprefix("metadata_"): g.score or 0.0
            for g in await metadata_quality(states[n], draft, ctx)
        }
        print(model, kind, n, scores)
        rows.append((kind, n, scores))
    return rows


async def test_calibration_rows_hashing() -> None:
    rows = await calibration_rows("hashing")
    assert len(rows) == 9
    assert all(s["completeness"] == 1.0 for kind, _, s in rows if kind == "good")


@pytest.mark.embedding_model
async def test_calibration_minilm_separates_coherent_from_swapped_metadata() -> None:
    """`pytest -m embedding_model -s tests/pipeline/test_metadata_gate.py` prints the figures."""
    rows = await calibration_rows("all-MiniLM-L6-v2")
    cfg = hosted_settings().gates.metadata
    good = [s for kind, _, s in rows if kind == "good"]
    assert min(s["coherence"] for s in good) >= cfg.coherence["all-MiniLM-L6-v2"]
    assert min(s["alignment"] for s in good) >= cfg.alignment["all-MiniLM-L6-v2"]
    assert (
        max(s["coherence"] for kind, _, s in rows if kind == "bad-head") < cfg.coherence["all-MiniLM-L6-v2"]
    )
    assert (
        max(s["alignment"] for kind, _, s in rows if kind == "bad-outcomes")
        < cfg.alignment["all-MiniLM-L6-v2"]
    )
