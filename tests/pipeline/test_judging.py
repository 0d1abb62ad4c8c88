"""The calibration sample (seed 000: a stronger model's verdict as ground truth): judged by the
premium tier, never by the generator's family; recorded beside the judge's verdict, never
substituted for it; the disagreement rate reported per course and as a service metric."""

from __future__ import annotations

import json

from courseforge.pipeline.judging import reference_tier
from courseforge.pipeline.prompts import parse_brief
from courseforge.providers import ChatRequest
from courseforge.telemetry.metrics import CallMetrics
from courseforge.testing import CourseAuthor
from engine_helpers import example_analysis, hosted_settings, make_engine, scripted_models


def _sampled_settings(**judge: object):  # type: ignore[no-untyped-def]
    settings = hosted_settings()
    js = settings.gates.judge.model_copy(update={"sample_rate": 1.0, **judge})
    # No lesson starts on premium (seed 000's pre-routing rule off): every sample's reference
    # is then the premium tier, the one this test's script makes harsh.
    routing = settings.routing.model_copy(update={"premium_complexity": 1.01, "premium_criticality": 1.01})
    return settings.model_copy(
        update={"gates": settings.gates.model_copy(update={"judge": js}), "routing": routing}
    )


def test_reference_is_never_of_the_generators_family() -> None:
    settings = hosted_settings()
    tiers, models = settings.routing.tiers, settings.models
    for generator in tiers:
        ref = reference_tier(settings, generator)
        assert ref is not None
        assert models[tiers[ref]].family != models[tiers[generator]].family
    # A configured stronger model is honoured when its family differs.
    other = _sampled_settings(strong_tier="long_context")
    assert reference_tier(other, "mid") == "long_context"
    assert reference_tier(_sampled_settings(strong_tier=None), "mid") is None


async def test_reference_verdict_recorded_not_substituted_and_disagreement_reported() -> None:
    settings = _sampled_settings()
    premium = settings.routing.tiers["premium"]
    author = CourseAuthor()

    def script_for(model_id: str):  # type: ignore[no-untyped-def]
        def script(request: ChatRequest) -> str:
            brief = parse_brief(request.messages)
            if brief.get("task") == "judge" and model_id == premium:
                # The reference is harsh; the gating judge (CourseAuthor) is satisfied.
                fair = json.loads(author(request))
                return json.dumps({**fair, "correctness": 2, "comprehensiveness": 2, "readability": 2})
            return author(request)

        return script

    engine = make_engine(settings, scripted_models(settings, script_for))
    try:
        result = await engine.generate(example_analysis())
    finally:
        await engine.aclose()
    assert result.course is not None
    samples = [d for d in result.report.decisions if d.action in ("judge_sample", "judge_calibration")]
    assert samples
    lesson_tiers = {s.id: s.tier for s in result.state.slots.values()}
    for d in samples:
        assert d.inputs["strong_model"] != settings.routing.tiers[d.tier]
        assert d.inputs["judge_passed"] is True and d.inputs["strong_passed"] is False
        lesson_id = d.task.removeprefix("lesson:")
        if lesson_tiers.get(lesson_id) != "premium":
            assert d.inputs["strong_tier"] == "premium"
    # Not substituted: the harsh reference sent no lesson back, the judge's verdict stands.
    assert all(s.status == "accepted" for s in result.state.slots.values())
    q = result.report.quality
    assert q is not None and q.judge_reference_samples == len(samples)
    assert q.judge_reference_disagreement_rate == 1.0
    metrics = CallMetrics()  # a course outcome: the CLI's metrics file has it as well as the service
    metrics.observe_course(result.report)
    assert metrics.judge_reference.labels("disagree")._value.get() == len(samples)
    assert metrics.judge_reference.labels("agree")._value.get() == 0
