"""Context overflow (seeds 000, 002: > 120K tokens -> the long-context model) for metadata,
lesson and judge calls alike, and the per-lesson source excerpts the route is measured on."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from courseforge.domain.drafts import ExerciseDraft, LessonDraft
from courseforge.ledger import Ledger
from courseforge.ledger.tokens import count_text_tokens
from courseforge.pipeline import PipelineContext, run_pipeline, validate_analysis
from courseforge.pipeline.context import fit_context
from courseforge.pipeline.judging import judge_lesson
from courseforge.providers import Message
from courseforge.testing import CourseAuthor, ScriptedModel
from engine_helpers import course_calls, example_data, hosted_settings

WORDS = [
    "photosynthesis",
    "chlorophyll",
    "light",
    "water",
    "oxygen",
    "glucose",
    "stomata",
    "carbon",
    "leaf",
    "energy",
]


def _sources(total_tokens: int) -> list[dict[str, str]]:
    out, used, i = [], 0, 0
    while used < total_tokens:
        sentences = [
            f"Fact {i}-{k}: the {WORDS[(i + k) % 10]} of a plant relates to {WORDS[(i * 3 + k) % 10]} in step {k}."
            for k in range(220)
        ]
        text = " ".join(sentences)
        out.append({"id": f"src-{i}", "title": f"Notes {i}", "text": text})
        used += count_text_tokens(text)
        i += 1
    return out


class _ClaimingAuthor(CourseAuthor):
    """Adds to each lesson one claim of its own that its sources cannot settle (the judge does)."""

    def lesson(self, brief: dict[str, Any]) -> dict[str, Any]:
        out = super().lesson(brief)
        out["content"] += " For example, we practise it step by step every day."
        return out


def _rig(settings: Any = None, author: CourseAuthor | None = None):  # type: ignore[no-untyped-def]
    settings = settings or hosted_settings()
    models = {m: ScriptedModel(author or CourseAuthor(), model_id=m) for m in settings.models}
    ledger = Ledger(Decimal(50))
    return settings, PipelineContext(settings, course_calls(settings, models, ledger), Decimal(50)), ledger


def _with(settings: Any, **grounding: Any) -> Any:
    g = settings.gates.grounding.model_copy(update=grounding)
    return settings.model_copy(update={"gates": settings.gates.model_copy(update={"grounding": g})})


def _tier(settings: Any, model: str) -> str:
    return next(t for t, m in settings.routing.tiers.items() if m == model)


def _analysis(**extra: Any):  # type: ignore[no-untyped-def]
    data = example_data("photosynthesis-sourced")
    return validate_analysis({**data, "min_lessons": 2, "budget_usd": "50", **extra})


async def test_200k_tokens_of_sources_shown_to_lessons_take_the_long_context_route() -> None:
    sources = _sources(200_000)
    assert sum(count_text_tokens(s["text"]) for s in sources) >= 200_000
    analysis = _analysis(source_material=sources)
    # Every sentence counts as relevant here (no relevance floor): the prompt is as big as the budget.
    settings, ctx, ledger = _rig(
        _with(hosted_settings(), excerpt_tokens=132_000, unsupported={"hashing": -1.0}), _ClaimingAuthor()
    )
    result = await run_pipeline(analysis, "big", ctx)
    decisions = result.state.decisions
    moved = [d for d in decisions if d.action == "long_context" and d.task.startswith("lesson:")]
    # Over the 120K threshold (though within the cheap/mid models' 131K windows): rerouted, and
    # the decision says how many tokens, counted how, against what.
    assert moved and all(d.tier == "long_context" for d in moved)
    margin = settings.routing.context_margin
    assert all(
        d.inputs["tokens"] >= d.inputs["threshold"] == min(120_000, int(d.inputs["window"] * (1 - margin)))
        for d in moved
    )
    # The judge, shown what the lesson was shown, goes the same way.
    assert [d for d in decisions if d.action == "long_context" and d.task.startswith("judge")]
    assert "tokenizer o200k_harmony" in moved[0].reason  # gpt-oss counted with its own tokenizer
    for slot in result.state.slots.values():
        task = f"lesson:{slot.id}"
        routed = [d for d in decisions if d.task == task and d.action in ("route", "long_context")]
        # Each lesson went long-context: by the threshold, or (over a model's window) at routing.
        assert routed[-1].tier == "long_context", routed
    first_calls = [
        r for r in ledger.records if r.task.startswith("lesson:") and r.attempt == 1 and r.phase == "lessons"
    ]
    assert first_calls and {_tier(settings, r.model) for r in first_calls} == {"long_context"}
    # The metadata prompt carries no sources: it stays on its tier.
    assert not [
        d for d in result.state.decisions if d.action == "long_context" and d.task.startswith("metadata")
    ]


async def test_the_same_sources_with_the_default_excerpt_budget_stay_on_the_ladder() -> None:
    analysis = _analysis(source_material=_sources(200_000))
    settings, ctx, _ = _rig()
    result = await run_pipeline(analysis, "big", ctx)
    assert not [d for d in result.state.decisions if d.action == "long_context"]
    shown = [s.excerpts for s in result.state.slots.values()]
    budget = settings.gates.grounding.excerpt_tokens
    assert all(ex and sum(count_text_tokens(x) for _, _, x in ex) <= budget for ex in shown)


async def test_a_metadata_prompt_over_the_threshold_goes_long_context() -> None:
    # Inputs bound section guidance (4,000 characters): 5 sections of it are ~5K tokens, so the
    # threshold is lowered to show the metadata call takes the same route as lessons and judges.
    data = example_data("python-basics")
    guidance = ("Explain with care, one worked example per idea, and name the common mistakes. " * 60)[:4000]
    sections = [{**s, "guidance": guidance} for s in data["sections"]]
    analysis = validate_analysis({**data, "sections": sections, "budget_usd": "50"})
    base = hosted_settings()
    settings, ctx, ledger = _rig(
        base.model_copy(update={"routing": base.routing.model_copy(update={"long_context_at_tokens": 5000})})
    )
    from courseforge.pipeline import CourseState, plan_lesson_counts
    from courseforge.pipeline.metadata import run_metadata

    state = CourseState(analysis=analysis, course_id="m", lesson_counts=plan_lesson_counts(analysis))
    await run_metadata(state, ctx)
    [moved] = [d for d in state.decisions if d.action == "long_context" and d.task == "metadata_core"]
    assert moved.inputs["from_tier"] == "premium" and moved.tier == "long_context"
    core = [r for r in ledger.records if r.task == "metadata_core"]
    assert _tier(settings, core[0].model) == "long_context"


async def test_a_judge_prompt_over_the_threshold_goes_long_context() -> None:
    settings, ctx, ledger = _rig()
    lesson = LessonDraft(
        content="Plants release oxygen when light splits water. " * 20,
        exercises=[
            ExerciseDraft(
                type="short_answer",
                question="What do plants release?",
                answer="oxygen",
                explanation="Light reactions split water.",
                outcome=1,
            )
        ],
    )
    from courseforge.quality.grounding import ClaimSupport

    big = {s["id"]: s["text"] for s in _sources(130_000)}
    decisions: list[Any] = []
    await judge_lesson(
        ctx,
        phase="lessons",
        lesson_id="S1-L1",
        lesson=lesson,
        outcomes={"LO1": "Explain what plants release"},
        tier="cheap",
        claims=[ClaimSupport("Plants release oxygen.", "uncertain", 0.5, 0.5)],
        sources=big,
        decisions=decisions,
    )
    [moved] = decisions
    assert moved.action == "long_context" and moved.inputs["from_tier"] == "cheap"
    [record] = [r for r in ledger.records if r.task.startswith("judge:")]
    assert _tier(settings, record.model) == "long_context"


def test_threshold_and_margin_are_configurable() -> None:
    settings, ctx, _ = _rig()
    text = "word " * 4000  # 5,000 tokens by the estimate
    msgs = [Message("user", text)]
    assert fit_context(ctx, "cheap", msgs, 100, "t")[0] == "cheap"
    routing = settings.routing.model_copy(update={"long_context_at_tokens": 4000})
    _, ctx2, _ = _rig(settings.model_copy(update={"routing": routing}))
    tier, decision = fit_context(ctx2, "cheap", msgs, 100, "t")
    assert tier == "long_context" and decision is not None and decision.inputs["threshold"] == 4000
    # The margin: 10 % of the cheap model's 131,072-token window below the window itself.
    routing3 = settings.routing.model_copy(update={"long_context_at_tokens": 10**6, "context_margin": 0.97})
    _, ctx3, _ = _rig(settings.model_copy(update={"routing": routing3}))
    tier, decision = fit_context(ctx3, "cheap", msgs, 100, "t")
    assert (
        tier == "long_context" and decision is not None and decision.inputs["threshold"] == int(131072 * 0.03)
    )


async def test_lessons_are_graded_against_the_excerpts_they_were_shown() -> None:
    from courseforge.pipeline import CourseState
    from courseforge.pipeline.lesson_checks import lesson_under_test
    from courseforge.pipeline.lessons import create_slots
    from courseforge.pipeline.metadata import run_metadata
    from courseforge.quality.lesson_gates import lesson_claims

    relevant = {"id": "leaf", "title": "Leaves", "text": "Chlorophyll in the leaf absorbs light. " * 3}
    stray = {"id": "bees", "title": "Bees", "text": "Honey bees visit thousands of flowers in one day. " * 40}
    analysis = _analysis(source_material=[relevant, stray])
    settings, ctx, _ = _rig(_with(hosted_settings(), excerpt_tokens=60))
    state = CourseState(analysis=analysis, course_id="g", lesson_counts=[1, 1, 1, 1])
    await run_metadata(state, ctx)
    create_slots(state)
    slot = next(iter(state.slots.values()))
    from courseforge.pipeline.context import lesson_excerpts

    shown = await lesson_excerpts(state, slot, ctx)
    assert [sid for sid, _, _ in shown] == ["leaf"]  # the bee passage is not relevant: not shown
    draft = LessonDraft(
        content="Honey bees visit thousands of flowers in one day. Chlorophyll in the leaf absorbs light. "
        * 5,
        exercises=[
            ExerciseDraft(
                type="short_answer",
                question="What absorbs light?",
                answer="chlorophyll",
                explanation="The leaf's chlorophyll does.",
                outcome=slot.outcome_numbers[0],
            )
        ],
        citations=["leaf"],
    )
    under_test = lesson_under_test(state, slot, draft)
    assert set(under_test.sources) == {"leaf"}
    claims = await lesson_claims(draft.content, under_test.sources, ctx.embedder(), settings)
    status = {c.claim.split()[0]: c.status for c in claims}
    assert status["Honey"] != "supported" and status["Chlorophyll"] == "supported"
