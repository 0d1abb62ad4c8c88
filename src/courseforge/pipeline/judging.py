"""The LLM judge, asked through Effects: prompt, tier choice, and one verdict per call chain.

The judge's answer is a bounded `JudgeDraft`; an invalid answer is re-asked with the validation
error (the cascade does that), so a judge costs one call when it behaves. The judge tier is the
configured one, moved to a tier whose model family differs from the generator's where the config
allows (a model grading its own family's writing is lenient with its own habits). The
calibration sample's reference judge is the premium tier (`gates.judge.strong_tier`), never of
the generator's family either; its verdict is recorded beside the judge's, never substituted.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from ..config import Settings
from ..domain import Decision
from ..domain.drafts import LessonDraft, json_schema_of
from ..domain.tasks import TaskId
from ..errors import JobStopped, RunError
from ..providers import ChatRequest, Message
from ..providers.effects import CallSpec
from ..quality.grounding import ClaimSupport
from ..quality.judge import JudgeDraft
from ..routing import Policy, Verdict, run_cascade
from .context import fit_context
from .parsing import parser_for
from .prompts import BRIEF_MARKER
from .state import PipelineContext

__all__ = ["JUDGE_SCHEMA", "judge_lesson", "judge_messages", "judge_tier", "reference_tier"]

JUDGE_SCHEMA = json_schema_of(JudgeDraft)

_SYSTEM = (
    "You are a strict reviewer of course lessons. Score honestly on 1-5: correctness (facts and "
    "logic; 5 = no errors), comprehensiveness (covers its outcomes; 5 = fully), readability "
    "(clear, well structured, right level; 5 = excellent). List concrete problems in `reasons`. "
    "Check every exercise's answer key. Answer with one JSON object only."
)


def judge_tier(settings: Settings, generator_tier: str | None, *, strong: bool = False) -> str | None:
    """The tier that judges a lesson written on `generator_tier` (None: judge disabled here).
    `strong`: the calibration sample's reference judge (`reference_tier`)."""
    if strong:
        return reference_tier(settings, generator_tier)
    js = settings.gates.judge
    tiers = settings.routing.tiers
    tier = js.tier if js.tier in tiers else settings.routing.ladder[0]
    if not js.prefer_other_family or generator_tier not in tiers:
        return tier
    family = settings.models[tiers[generator_tier]].family
    mine = settings.models[tiers[tier]].family
    if not family or mine != family:
        return tier
    candidates = js.candidate_tiers or list(tiers)
    others = [t for t in candidates if t in tiers and settings.models[tiers[t]].family not in ("", family)]
    # Cheapest first (output price: a verdict is mostly output tokens).
    others.sort(key=lambda t: _price(settings, t))
    return others[0] if others else tier


def _price(settings: Settings, tier: str) -> tuple[Decimal, Decimal]:
    model = settings.models[settings.routing.tiers[tier]]
    return model.price_out_per_m, model.price_in_per_m


def reference_tier(settings: Settings, generator_tier: str | None) -> str | None:
    """The calibration sample's reference judge (a stronger model as the ground truth):
    `gates.judge.strong_tier` (premium), unless its model is of the generator's family; then the
    dearest configured tier of another family that is at least as dear as the gating judge (a
    reference is never the weaker of the two). None when no tier qualifies: the sample then goes
    without a reference, and its decision says so."""
    js = settings.gates.judge
    tiers = settings.routing.tiers
    if not js.strong_tier or js.strong_tier not in tiers:
        return None
    family = settings.models[tiers[generator_tier]].family if generator_tier in tiers else ""

    def other_family(tier: str) -> bool:
        mine = settings.models[tiers[tier]].family
        return not family or not mine or mine != family

    if other_family(js.strong_tier):
        return js.strong_tier
    floor = _price(settings, judge_tier(settings, generator_tier) or js.strong_tier)
    others = [t for t in tiers if other_family(t) and _price(settings, t) >= floor and t != js.strong_tier]
    others.sort(key=lambda t: _price(settings, t), reverse=True)
    return others[0] if others else None


def judge_messages(
    lesson: LessonDraft,
    outcomes: Mapping[str, str],
    claims: Sequence[ClaimSupport] = (),
    sources: Mapping[str, str] | None = None,
    feedback: str = "",
) -> list[Message]:
    exercises = [
        {
            "number": i + 1,
            "type": e.type,
            "question": e.question,
            **({"options": e.options} if e.options else {}),
            "answer": e.answer,
        }
        for i, e in enumerate(lesson.exercises)
    ]
    brief: dict[str, Any] = {
        "task": "judge",
        "outcomes": [{"id": k, "text": v} for k, v in outcomes.items()],
        "exercises": exercises,
    }
    text = (
        "Review this lesson against its learning outcomes.\n\nOUTCOMES:\n"
        + "\n".join(f"- {k}: {v}" for k, v in outcomes.items())
        + f"\n\nLESSON:\n{lesson.content}\n\nEXERCISES (check each answer key; list every exercise "
        "in `exercises` with answer_correct):\n" + json.dumps(exercises, ensure_ascii=False)
    )
    if claims:
        numbered = [{"number": i + 1, "claim": c.claim, "source": c.source_id} for i, c in enumerate(claims)]
        brief["claims"] = numbered
        text += (
            "\n\nCLAIMS to check against the SOURCES (list each in `claims` with supported true "
            "only if the sources state it):\n" + json.dumps(numbered, ensure_ascii=False)
        )
        if sources:
            # What the lesson was shown (its excerpts, `context.lesson_excerpts`), not more.
            text += "\n\nSOURCES:\n" + "\n".join(f"[{k}] {v}" for k, v in sources.items())
    if feedback:
        text += f"\n\nYour previous answer was rejected: {feedback}"
    text += f"\n\n{BRIEF_MARKER}\n{json.dumps(brief, ensure_ascii=False)}"
    return [Message("system", _SYSTEM), Message("user", text)]


def content_key(lesson: LessonDraft) -> str:
    """A short digest of the lesson text: judge task names are stable for a given lesson (so a
    resumed run replays them) and distinct for each attempt's text."""
    return hashlib.sha256(lesson.content.encode("utf-8")).hexdigest()[:8]


async def judge_lesson(
    ctx: PipelineContext,
    *,
    phase: str,
    lesson_id: str,
    lesson: LessonDraft,
    outcomes: Mapping[str, str],
    tier: str,
    claims: Sequence[ClaimSupport] = (),
    sources: Mapping[str, str] | None = None,
    strong: bool = False,
    round: int = 0,
    decisions: list[Decision] | None = None,
) -> JudgeDraft | None:
    """One judge verdict on `tier` (re-asked on invalid output), or None when the judge could
    not answer (the caller then keeps the embedding verdict). `strong`: the calibration
    sample's stronger judge (its own task, `judge_strong:...`)."""
    js = ctx.settings.gates.judge
    task = TaskId.judge_task(lesson_id, content_key(lesson), strong=strong)
    # A judge prompt too large for its tier goes to the long-context tier, like any call.
    probe = judge_messages(lesson, outcomes, claims, sources)
    tier, moved = fit_context(ctx, tier, probe, js.max_tokens, task.key())
    if moved is not None and decisions is not None:
        decisions.append(moved)
    model = ctx.settings.models[ctx.settings.routing.tiers[tier]]

    def build(tier_: str, attempt: int, feedback: str) -> ChatRequest:
        return ChatRequest(
            judge_messages(lesson, outcomes, claims, sources, feedback),
            json_schema=JUDGE_SCHEMA,
            schema_name="judge",
            max_tokens=min(model.max_output_tokens, js.max_tokens),
            temperature=0.0,
            tags={"phase": phase, "task": task.key(), "max_retries": "1"},
        )

    async def accept(_: JudgeDraft, __: CallSpec) -> Verdict:
        return Verdict(True, score=1.0)

    try:
        result = await run_cascade(
            phase=phase,
            round=round,
            task=task,
            start_tier=tier,
            policy=lambda: Policy(ladder=(tier,), max_attempts=js.max_attempts, escalate=False),
            build=build,
            parse=parser_for(JudgeDraft),
            check=accept,
            call=ctx.effects.call,
        )
    except JobStopped:
        raise  # the provider stopped the job (401, 402): not a verdict the course can do without
    except RunError:
        return None
    return result.value if result.status == "accepted" else None
