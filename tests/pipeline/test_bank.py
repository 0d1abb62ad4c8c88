"""A vetted question bank: questions placed in the lessons they are about, reused with their
source ids, the lessons' models asked for fewer exercises, the report's counts."""

from __future__ import annotations

from pathlib import Path

from courseforge.config import Settings
from courseforge.domain import AnalysisResult
from courseforge.exports.bank_import import read_bank
from courseforge.pipeline.bank import TOKENS_PER_EXERCISE
from engine_helpers import EXAMPLES, make_engine, scripted_models


async def test_bank_questions_are_reused_and_the_model_asked_for_fewer(
    settings: Settings, analysis: AnalysisResult
) -> None:
    bank = read_bank(EXAMPLES / "python-basics.bank.gift").questions
    assert len(bank) == 30
    models = scripted_models(settings)
    result = await make_engine(settings, models).generate(analysis, bank=bank)
    assert result.course is not None and result.state is not None
    by_id = {q.id: q for q in bank}
    reused = {lesson.id: [e for e in lesson.exercises if e.id in by_id] for lesson in result.course.lessons()}
    total = sum(len(v) for v in reused.values())
    assert total >= 10  # most lessons reuse some of the bank
    cap = settings.gates.max_exercises
    for lesson in result.course.lessons():
        assert len(reused[lesson.id]) <= cap - 1
        for e in reused[lesson.id]:  # kept as vetted: text, answer, source id; mapped to an outcome
            assert (e.question, e.answer, e.type) == (
                by_id[e.id].question,
                by_id[e.id].answer,
                by_id[e.id].type,
            )
            assert e.outcome_ids and set(e.outcome_ids) <= set(lesson.outcome_ids)
    assert len({e.id for v in reused.values() for e in v}) == total  # each question used once
    # A lesson reusing k questions asked its model for at most `cap - k` exercises.
    asked = {}
    for model in models.values():
        for request in model.requests:
            task = request.tags.get("task", "")
            if task.startswith("lesson:") and request.json_schema:
                lesson = task.split(":")[1].split("/")[0]
                asked[lesson] = request.json_schema["properties"]["exercises"]["maxItems"]
    assert len(asked) == len(reused)
    assert all(asked[lid] == cap - len(v) for lid, v in reused.items())
    summary = result.report.summary
    assert summary["bank_reused"] == total
    assert (
        summary["bank_generated"] == sum(len(lesson.exercises) for lesson in result.course.lessons()) - total
    )
    assert 0 < summary["bank_saved_estimate_usd"] <= total * TOKENS_PER_EXERCISE * 3.90 / 1e6 + 1e-9


async def test_no_bank_no_bank_figures(settings: Settings, analysis: AnalysisResult) -> None:
    result = await make_engine(settings, scripted_models(settings)).generate(analysis)
    assert not [k for k in result.report.summary if k.startswith("bank_")]


def test_the_bundled_bank_reads_back(tmp_path: Path) -> None:
    assert len(read_bank(EXAMPLES / "python-basics.bank.gift").questions) == 30
