"""Self-consistency (seed 000 pattern 3): a sampled tier draws two answers per attempt, keeps
the better one (the other stays on the bill as rejected), and escalates when they disagree."""

from __future__ import annotations

from collections import Counter

from courseforge.config import Settings
from courseforge.pipeline.prompts import parse_brief
from courseforge.providers import ChatRequest
from courseforge.testing import CourseAuthor
from engine_helpers import example_analysis, hosted_settings, make_engine, scripted_models


def _sampling_settings() -> Settings:
    settings = hosted_settings()
    consistency = settings.gates.consistency.model_copy(update={"all_sections": True, "samples": 2})
    gates = settings.gates.model_copy(update={"consistency": consistency})
    judge = gates.judge.model_copy(update={"enabled": False})
    return settings.model_copy(update={"gates": gates.model_copy(update={"judge": judge})})


async def test_agreeing_samples_keep_one_and_bill_both() -> None:
    settings = _sampling_settings()
    engine = make_engine(settings, scripted_models(settings))
    result = await engine.generate(example_analysis())
    assert result.course is not None
    samples = [c for c in result.report.calls if "#s2" in c.task]
    assert samples, "sampled tiers draw a second answer"
    by_attempt = Counter(
        (c.task.split("#")[0], c.attempt) for c in result.report.calls if c.phase == "lessons"
    )
    assert any(n == 2 for n in by_attempt.values())  # both samples of one attempt recorded
    assert any(c.outcome == "rejected" for c in result.report.calls if c.phase == "lessons")
    assert all(c.cost_usd > 0 for c in samples)  # the unused sample stays on the bill


async def test_disagreeing_samples_escalate() -> None:
    settings = _sampling_settings()
    author = CourseAuthor()
    off_topic = CourseAuthor(off_topic=lambda brief: True)
    seen: Counter[str] = Counter()

    def alternate(request: ChatRequest) -> str:
        brief = parse_brief(request.messages)
        if brief.get("task") != "lesson":
            return author(request)
        seen[brief["lesson_title"]] += 1
        # Every second draw of a lesson drifts off-topic: the two samples disagree.
        return (off_topic if seen[brief["lesson_title"]] % 2 == 0 else author)(request)

    models = scripted_models(settings, lambda model_id: alternate if model_id != "qwen3-max" else author)
    engine = make_engine(settings, models)
    result = await engine.generate(example_analysis())
    escalations = [d for d in result.report.decisions if d.action == "escalate"]
    assert escalations, "disagreeing samples must escalate"
    assert any(c.tier == "premium" and c.phase == "lessons" for c in result.report.calls)


async def test_hosted_profile_samples_its_critical_lessons_only() -> None:
    settings = hosted_settings()
    cs = settings.gates.consistency
    assert cs.samples == 3 and cs.critical  # seed 001's count (issue 26, item 6)
    engine = make_engine(settings, scripted_models(settings))
    analysis = example_analysis()  # section 4 ("Collections") is the critical one
    result = await engine.generate(analysis)
    await engine.aclose()
    assert result.course is not None
    critical = {f"S{i + 1}" for i, s in enumerate(analysis.sections) if s.critical}
    sampled = {c.task.split(":")[1].split("-")[0] for c in result.report.calls if "#s2" in c.task}
    # Seed 000's pre-routing sends a critical section to premium, a tier not sampled: a critical
    # lesson is sampled only once it runs on a sampled tier (here: seed 000's rule turned off).
    assert sampled == set()
    routing = settings.routing.model_copy(update={"premium_criticality": 1.01})
    settings = settings.model_copy(update={"routing": routing})
    engine = make_engine(settings, scripted_models(settings))
    result = await engine.generate(analysis)
    await engine.aclose()
    sampled = {c.task.split(":")[1].split("-")[0] for c in result.report.calls if "#s2" in c.task}
    assert sampled == critical


async def test_a_broken_first_sample_gives_way_to_the_usable_second() -> None:
    settings = _sampling_settings()
    author = CourseAuthor()

    sampled_models = {settings.routing.tiers[t] for t in settings.gates.consistency.tiers}
    seen: Counter[str] = Counter()

    def script_for(model_id: str):  # type: ignore[no-untyped-def]
        def script(request: ChatRequest) -> str:
            text = author(request)
            lesson = parse_brief(request.messages).get("task") == "lesson"
            key = model_id + request.messages[-1].content
            seen[key] += 1
            if lesson and model_id in sampled_models and seen[key] % 2 == 1:
                return text[: len(text) // 2]  # one sample of every sampled attempt is cut off
            return text

        return script

    engine = make_engine(settings, scripted_models(settings, script_for))
    result = await engine.generate(example_analysis())
    await engine.aclose()
    assert result.course is not None
    lesson_calls = [c for c in result.report.calls if c.phase == "lessons" and c.task.startswith("lesson:")]
    # The cut-off samples were refused by the schema check (billed, rejected answers) ...
    assert any(c.outcome == "rejected" and "schema" in c.reason for c in lesson_calls)
    # ... and every sampled lesson was accepted on its first attempt: the usable sample spared a retry.
    sampled = {c.task.split("#")[0] for c in result.report.calls if "#s2" in c.task and c.phase == "lessons"}
    first_try = {
        d.task for d in result.report.decisions if d.action == "accept" and d.inputs.get("attempt") == 1
    }
    assert sampled and sampled <= first_try
