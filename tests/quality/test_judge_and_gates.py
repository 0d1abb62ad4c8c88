"""The judge (with the scripted double), the new gates' verdicts, calibration and the CLI."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from courseforge.cli import app
from courseforge.domain.drafts import ExerciseDraft, LessonDraft
from courseforge.ledger import Ledger
from courseforge.pipeline import PipelineContext
from courseforge.pipeline.judging import judge_lesson, judge_tier
from courseforge.pipeline.prompts import parse_brief
from courseforge.providers import ChatRequest
from courseforge.quality.base import GateContext
from courseforge.quality.calibrate import derive_thresholds
from courseforge.quality.coverage import OutcomeCoverageGate
from courseforge.quality.grounding import ClaimSupport, GroundingGate, factual_claims
from courseforge.quality.judge import JudgeDraft, JudgeGate, composite, in_sample
from courseforge.quality.redundancy import ConsistencyGate, min_pairwise_cosine
from courseforge.testing import CourseAuthor, ScriptedModel
from engine_helpers import (
    EXAMPLES,
    course_calls,
    example_analysis,
    hosted_settings,
    make_engine,
    scripted_models,
)


def verdict(c: int = 4, k: int = 4, r: int = 4, **extra: Any) -> JudgeDraft:
    return JudgeDraft(correctness=c, comprehensiveness=k, readability=r, **extra)


@pytest.mark.parametrize(
    ("draft", "passed", "kind"),
    [
        (verdict(), True, "pass"),
        (verdict(3, 4, 4), False, "fail"),  # 0.6*3 + 0.8 + 0.8 = 3.4 < 3.5
        (verdict(2, 2, 2), False, "severe"),
        (verdict(4, 4, 4, teaches_outcomes=False), False, "fail"),
        (verdict(exercises=[{"number": 2, "answer_correct": False, "problem": "B is right"}]), False, "fail"),
    ],
)
def test_judge_gate(draft: JudgeDraft, passed: bool, kind: str) -> None:
    result = JudgeGate().check(None, GateContext(values={"judge": draft}))
    assert (result.passed, result.verdict) == (passed, kind)
    assert result.score == composite(draft)


def test_composite_weights_and_the_reference_verdict_is_never_substituted() -> None:
    assert composite(verdict(5, 1, 1)) == pytest.approx(3.4)
    # The calibration reference is recorded by the pipeline, never read by the gate.
    result = JudgeGate().check(
        None, GateContext(values={"judge": verdict(), "judge_strong": verdict(2, 2, 2)})
    )
    assert result.passed


def test_calibration_sample_is_deterministic_and_about_the_rate() -> None:
    keys = [f"course/S{i}-L{j}" for i in range(50) for j in range(20)]
    share = sum(in_sample(k, 0.1) for k in keys) / len(keys)
    assert 0.08 <= share <= 0.12
    assert [in_sample(k, 0.1) for k in keys[:50]] == [in_sample(k, 0.1) for k in keys[:50]]
    assert not any(in_sample(k, 0.0) for k in keys)


def test_judge_prefers_the_cheapest_tier_of_another_family() -> None:
    settings = hosted_settings()
    assert judge_tier(settings, "mid") == "long_context"  # gemini flash, not the premium qwen
    assert judge_tier(settings, "premium") == "cheap"  # qwen wrote it; openai judges
    # The calibration reference: premium (qwen), unless qwen wrote the lesson; then the dearest
    # tier of another family at least as dear as the judge (gemini flash, not gpt-oss).
    assert judge_tier(settings, "mid", strong=True) == "premium"
    assert judge_tier(settings, "cheap", strong=True) == "premium"
    assert judge_tier(settings, "premium", strong=True) == "long_context"


def lesson() -> LessonDraft:
    ex = ExerciseDraft(
        type="short_answer",
        question="What do plants release?",
        answer="oxygen",
        explanation="Light reactions split water.",
        outcome=1,
    )
    return LessonDraft(content="Plants release oxygen when light splits water. " * 20, exercises=[ex])


async def test_invalid_judge_output_is_reasked_with_the_validation_error() -> None:
    settings = hosted_settings()
    answers = iter(['{"correctness": 9}', json.dumps(verdict().model_dump())])
    model = ScriptedModel(lambda r: next(answers), model_id="gemini-2.5-flash")
    models = {m: ScriptedModel(CourseAuthor(), model_id=m) for m in settings.models} | {
        "gemini-2.5-flash": model
    }
    ledger = Ledger(Decimal(1))
    ctx = PipelineContext(settings, course_calls(settings, models, ledger), Decimal(1))
    got = await judge_lesson(
        ctx,
        phase="lessons",
        lesson_id="S1-L1",
        lesson=lesson(),
        outcomes={"LO1": "Explain photosynthesis"},
        tier="long_context",
    )
    assert got == verdict()
    assert model.calls == 2
    assert "did not match the schema" in model.requests[1].messages[-1].content
    assert [r.outcome for r in ledger.records] == ["rejected", "ok"]
    assert parse_brief(model.requests[0].messages)["exercises"][0]["answer"] == "oxygen"


async def test_a_harsh_judge_sends_every_lesson_back_and_the_report_counts_it() -> None:
    settings = hosted_settings()
    gates = settings.gates.model_copy(
        update={"judge": settings.gates.judge.model_copy(update={"always": True})}
    )
    settings = settings.model_copy(update={"gates": gates})
    author = CourseAuthor()

    def script(request: ChatRequest) -> str:
        if parse_brief(request.messages).get("task") == "judge":
            return json.dumps(verdict(2, 3, 3, reasons=["states that plants breathe in oxygen"]).model_dump())
        return author(request)

    engine = make_engine(settings, scripted_models(settings, lambda _m: script))
    result = await engine.generate(example_analysis())
    await engine.aclose()
    q = result.report.quality
    assert q is not None and q.judge_calls > 0 and q.composite_mean == pytest.approx(2.4)
    assert q.judge_vs_gate_disagreements > 0  # the embedding gates liked what the judge did not
    assert q.first_attempt_pass_rate == 0.0
    [lesson_gates, *_] = result.report.lessons
    judge = next(g for g in lesson_gates.gates if g.gate == "judge")
    assert not judge.passed and "plants breathe in oxygen" in " ".join(judge.reasons)


def test_grounding_gate_lists_ungrounded_claims() -> None:
    claims = [
        ClaimSupport("A is B.", "supported", 0.8, 0.9),
        ClaimSupport("C is D.", "unsupported", 0.1, 0.0),
    ]
    result = GroundingGate(0.8).check(None, GateContext(values={"grounding": claims}))
    assert not result.passed and result.score == 0.5
    assert "unsupported: 'C is D.'" in result.reasons
    assert factual_claims(
        "## Title\n\nPlants make sugar from light and water.\n\nWhat is it?\n\nPractise this at home every day."
    ) == ["Plants make sugar from light and water."]


def test_consistency_and_coverage_gates() -> None:
    assert ConsistencyGate(0.8).check(None, GateContext(values={"consistency": 0.7})).verdict == "severe"
    assert min_pairwise_cosine([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]) == 0.0
    ctx = GateContext(
        outcomes={f"LO{i}": "x" for i in range(10)},
        values={"taught": {f"LO{i}" for i in range(10)}, "assessed": {f"LO{i}" for i in range(9)}},
    )
    assert OutcomeCoverageGate(0.9).check(None, ctx).passed
    assert not OutcomeCoverageGate(0.95).check(None, ctx).passed


def test_derive_thresholds() -> None:
    pairs = [
        (0.7, True),
        (0.66, True),
        (0.6, True),
        (0.58, True),
        (0.5, False),
        (0.45, False),
        (0.2, False),
        (0.1, False),
    ]
    cal = derive_thresholds(pairs)
    assert 0.5 < cal.pass_at <= 0.58 and cal.at_pass.precision == 1.0 and cal.at_pass.recall == 1.0
    assert cal.severe_below <= cal.pass_at


runner = CliRunner()


def test_check_command_exit_codes(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{}", "utf-8")
    cfg = tmp_path / "c.yaml"
    import yaml

    cfg.write_text(yaml.safe_dump(hosted_settings().model_dump(mode="json")), "utf-8")
    result = runner.invoke(
        app, ["check", str(bad), "--input", str(EXAMPLES / "python-basics.json"), "-c", str(cfg)]
    )
    assert result.exit_code == 2
    course_path = tmp_path / "course.json"
    import asyncio

    settings = hosted_settings()
    engine = make_engine(settings, scripted_models(settings))
    generated = asyncio.run(engine.generate(example_analysis()))
    assert generated.course is not None
    course = generated.course.model_copy(deep=True)
    course.sections[0].lessons[0].content += "\n\nQuestions? Write to teacher.jones@gmail.com."
    course_path.write_text(course.model_dump_json(), "utf-8")
    report = tmp_path / "r.json"
    result = runner.invoke(
        app,
        [
            "check",
            str(course_path),
            "--input",
            str(EXAMPLES / "python-basics.json"),
            "-c",
            str(cfg),
            "--report",
            str(report),
        ],
    )
    assert result.exit_code == 1, result.output
    assert "safety" in result.stdout and "teacher.jones@gmail.com" in result.stdout
    data = json.loads(report.read_text("utf-8"))
    assert data["status"] == "needs_review" and data["quality"]["similarity_mean"] is not None
    # check says which profile's policy it judged by; --config chooses it.
    policy = data["summary"]["policy"]
    assert policy["profile"] == "hosted" and policy["lesson_words"] == [120, 900]
    assert "judged by the 'hosted' profile's policy: lessons 120-900 words" in result.output
    offline = runner.invoke(
        app,
        ["check", str(course_path), "--input", str(EXAMPLES / "python-basics.json"), "--config", "offline"],
    )
    assert "judged by the 'offline' profile's policy" in offline.output


def test_calibrate_command(tmp_path: Path) -> None:
    rows = [
        {"score": s, "label": "pass" if s > 0.55 else "fail"} for s in (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
    ]
    path = tmp_path / "l.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows), "utf-8")
    result = runner.invoke(app, ["calibrate", str(path)])
    assert result.exit_code == 0, result.output
    assert "pass_at      0.5500  pass precision 1.000 recall 1.000" in result.stdout
