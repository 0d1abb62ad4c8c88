"""The issue-4 lesson gates as the cascade runs them: safety, grounding, the LLM judge on
borderline similarity (and uncertain claims), and self-consistency sampling.

`extra_lesson_gates` is called by `check_lesson` after the first gates; it may ask the judge
(through Effects, phase "judge"). `lesson_effects` wraps Effects for a lesson whose section type
is configured for self-consistency: each call on a sampled tier draws 2-3 samples, keeps the
best-scoring one and remembers how far the samples disagree, which `ConsistencyGate` reads.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace

from ..config import Settings
from ..domain import Decision
from ..domain.drafts import LessonDraft
from ..errors import BadResponse, ProviderError
from ..providers import Embedder
from ..providers.effects import CallResult, CallSpec, Effects, run_blocking
from ..quality.base import GateContext, GateResult
from ..quality.gates import lesson_similarity
from ..quality.grounding import ClaimSupport, GroundingGate, apply_judgement, factual_claims, ground_claims
from ..quality.judge import JudgeDraft, JudgeGate, composite, in_sample
from ..quality.redundancy import ConsistencyGate, min_pairwise_cosine, text_vectors
from ..quality.safety import SafetyGate
from .judging import judge_lesson, judge_tier
from .parsing import parser_for
from .state import CourseState, LessonSlot, PipelineContext

__all__ = [
    "SamplingEffects",
    "borderline_band",
    "extra_lesson_gates",
    "lesson_claims",
    "lesson_effects",
    "safety_gate",
]

#: Lowest pairwise cosine of the samples behind a chosen lesson text, by sha256 of its content.
#: Written by SamplingEffects, read (and dropped) by the lesson's check.
_CONSISTENCY: dict[str, float] = {}


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def safety_gate(settings: Settings) -> SafetyGate:
    """The safety gate as `gates.safety` configures it (the cascade and `courseforge check`)."""
    s = settings.gates.safety
    return SafetyGate(
        s.pii,
        region=s.phone_region,
        profanity=s.profanity,
        classifier=s.classifier,
        threshold=s.classifier_threshold,
        allowed=s.allow_words,
    )


async def lesson_claims(
    content: str, sources: Mapping[str, str], embedder: Embedder, settings: Settings
) -> list[ClaimSupport]:
    """A lesson's factual claims grounded in `sources` at the embedder's `gates.grounding`
    thresholds (the cascade and `courseforge check`)."""
    gs = settings.gates.grounding
    return await ground_claims(
        factual_claims(content),
        sources,
        embedder,
        supported=gs.supported.get(embedder.name, 0.6),
        unsupported=gs.unsupported.get(embedder.name, 0.4),
    )


def borderline_band(ctx: PipelineContext, embedder_name: str) -> tuple[float, float] | None:
    band = ctx.settings.gates.judge.borderline.get(embedder_name)
    return (band[0], band[1]) if band else None


def _phase_of(state: CourseState, slot: LessonSlot) -> str:
    """The phase this lesson attempt runs in: lessons, or the phase that sent it back (phase 5's
    regenerate decisions carry their round)."""
    if not slot.rounds:
        return "lessons"
    last = next(
        (d for d in reversed(state.decisions) if d.action == "regenerate" and d.task == f"lesson:{slot.id}"),
        None,
    )
    return "completeness" if last is not None and "round" in last.inputs else "quality"


def _generator_tier(state: CourseState, task_prefix: str) -> str | None:
    for d in reversed(state.decisions):
        if d.task.startswith(task_prefix) and d.action == "route":
            return d.tier
    return None


async def extra_lesson_gates(
    state: CourseState,
    slot: LessonSlot,
    draft: LessonDraft,
    ctx: PipelineContext,
    results: list[GateResult],
    outcomes: dict[str, str],
) -> list[GateResult]:
    """`results` (the first gates) with the similarity verdict possibly settled by the judge,
    followed by the safety, consistency, grounding and judge results."""
    from .lessons import EffectsEmbedder

    gates = ctx.settings.gates
    embedder = EffectsEmbedder(ctx)
    out = list(results)
    if gates.safety.enabled:
        # In a worker thread: the first check loads a word list and a classifier (~1.5 s) and
        # must not stall every other lesson's call on the event loop (inline in a workflow).
        out.append(await run_blocking(ctx.effects, safety_gate(ctx.settings).check, draft, GateContext()))
    consistency = _CONSISTENCY.pop(_sha(draft.content), None)
    if consistency is not None:
        bound = gates.consistency.min_cosine.get(embedder.name, 0.85)
        out.append(ConsistencyGate(bound).check(draft, GateContext(values={"consistency": consistency})))

    claims = []
    sources = {m.id: m.text for m in state.analysis.source_material}
    gs = gates.grounding
    if sources and gs.enabled:
        claims = await lesson_claims(draft.content, sources, embedder, ctx.settings)

    # The judge: on borderline similarity, on uncertain claims or always when configured it gates
    # the lesson (with the stronger tier's verdict winning when the lesson is also sampled); a
    # lesson only in the calibration sample is judged in the background.
    js = gates.judge
    sim_index = next((i for i, r in enumerate(out) if r.gate == "similarity"), None)
    similarity = out[sim_index].score if sim_index is not None else None
    band = borderline_band(ctx, embedder.name)
    borderline = bool(band and similarity is not None and band[0] <= similarity < band[1])
    uncertain = [i for i, c in enumerate(claims) if c.status == "uncertain"][: gs.max_judged_claims]
    asked = [claims[i] for i in uncertain] if gs.judge_uncertain else []
    sampled = in_sample(f"{state.course_id}/{slot.id}", js.sample_rate)
    tier = judge_tier(ctx.settings, _generator_tier(state, f"lesson:{slot.id}"))

    async def run_judges(target: list[GateResult], *, background: bool = False) -> None:
        nonlocal claims
        assert tier is not None
        strong = judge_tier(ctx.settings, None, strong=True) if sampled else None
        tiers = [tier] + ([strong] if strong and strong != tier else [])
        phase = _phase_of(state, slot)
        verdicts = await asyncio.gather(
            *(
                judge_lesson(
                    ctx,
                    phase=phase,
                    lesson_id=slot.id,
                    lesson=draft,
                    outcomes=outcomes,
                    tier=t,
                    claims=asked,
                    sources=sources if asked else None,
                    label="judge" if t == tier else "judge_strong",
                )
                for t in tiers
            )
        )
        verdict, strong_verdict = verdicts[0], (verdicts[1] if len(verdicts) > 1 else None)
        if verdict is not None or strong_verdict is not None:
            gate = JudgeGate(js.pass_composite, js.min_correctness)
            values = {"judge": verdict or strong_verdict, "judge_strong": strong_verdict}
            judged = gate.check(draft, GateContext(values=values))
            target.append(judged)
            if borderline and sim_index is not None and not target[sim_index].passed:
                sim = target[sim_index]
                note = f"borderline similarity {similarity:.2f}: judge composite {judged.score:.2f} " + (
                    "accepts it" if judged.passed else "rejects it"
                )
                target[sim_index] = replace(
                    sim,
                    passed=judged.passed,
                    verdict="borderline",
                    reasons=[note] if judged.passed else [*sim.reasons, note],
                )
            final = strong_verdict or verdict
            assert final is not None
            answers = {
                uncertain[c.number - 1]: c.supported for c in final.claims if c.number <= len(uncertain)
            }
            claims = apply_judgement(claims, answers)

            def passes(v: JudgeDraft | None) -> bool | None:
                return gate.check(draft, GateContext(values={"judge": v})).passed if v else None

            why = [
                w
                for w, on in (
                    ("borderline similarity", borderline),
                    ("uncertain claims", asked),
                    ("calibration sample", sampled),
                    ("always", js.always),
                )
                if on
            ]
            state.decisions.append(
                Decision(
                    task=f"lesson:{slot.id}",
                    action="judge_calibration" if background else "judge_sample" if sampled else "judge",
                    tier=tier,
                    reason=", ".join(why),
                    inputs={
                        "gates_passed": all(r.passed for r in results),
                        "similarity": similarity,
                        "judge_passed": passes(verdict),
                        "judge_composite": composite(verdict) if verdict else None,
                        **(
                            {
                                "strong_tier": tiers[1],
                                "strong_passed": passes(strong_verdict),
                                "strong_composite": composite(strong_verdict) if strong_verdict else None,
                            }
                            if len(tiers) > 1
                            else {}
                        ),
                    },
                )
            )

    needs_verdict = js.always or borderline or bool(asked)
    if js.enabled and tier and needs_verdict:
        await run_judges(out)
    elif js.enabled and tier and sampled:
        # Calibration only (seed 000: a 10 % sample re-judged by a stronger model, as ground truth
        # for the cheap judge): judged beside the pipeline, counted in the report, never gating
        # this lesson, so it stays off the critical path. Awaited before the course is assembled.
        state.background.append(asyncio.ensure_future(run_judges([*out], background=True)))
    if sources and gs.enabled:
        out.append(GroundingGate(gs.min_coverage).check(draft, GateContext(values={"grounding": claims})))
    return out


# -- self-consistency ---------------------------------------------------------------------------
def _sampled(ctx: PipelineContext, section_type: str, critical: bool) -> bool:
    cs = ctx.settings.gates.consistency
    return cs.all_sections or section_type in cs.section_types or (cs.critical and critical)


class SamplingEffects:
    """Effects that draw `samples` answers for each call on a sampled tier, return the one the
    scorer likes best, and mark the others rejected (they stay on the bill)."""

    def __init__(
        self,
        inner: Effects,
        *,
        samples: int,
        tiers: Sequence[str],
        score: Callable[[LessonDraft], Awaitable[float]],
    ) -> None:
        self.inner = inner
        self.samples = samples
        self.tiers = set(tiers)
        self.score = score
        self._parse = parser_for(LessonDraft)

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return await self.inner.embed(texts)

    def now_ms(self) -> float:
        return self.inner.now_ms()

    def budget_fraction(self) -> float:
        return self.inner.budget_fraction()

    async def call(self, spec: CallSpec) -> CallResult:
        if spec.tier not in self.tiers:
            return await self.inner.call(spec)
        extra = [replace(spec, task=f"{spec.task}#s{k}") for k in range(2, self.samples + 1)]
        first, *others = await asyncio.gather(
            self.inner.call(spec), *(self.inner.call(s) for s in extra), return_exceptions=True
        )
        if isinstance(first, BaseException):
            raise first
        candidates: list[tuple[CallResult, LessonDraft]] = []
        for result in [first, *others]:
            if isinstance(result, BaseException):
                if not isinstance(result, ProviderError):
                    raise result
                continue
            try:
                candidates.append((result, self._parse(result.response.text)))
            except (ValueError, BadResponse):
                continue
        if len(candidates) < 2:
            return first
        vectors = await text_vectors([d.content for _, d in candidates], self)
        agreement = min_pairwise_cosine(vectors)
        scores = [await self.score(d) for _, d in candidates]
        best = max(range(len(candidates)), key=scores.__getitem__)
        for i, (result, _) in enumerate(candidates):
            if i != best:
                result.reject(f"self-consistency: sample {i + 1} of {len(candidates)} not kept")
        chosen, draft = candidates[best]
        _CONSISTENCY[_sha(draft.content)] = round(agreement, 4)
        return chosen


def lesson_effects(state: CourseState, slot: LessonSlot, ctx: PipelineContext) -> Effects:
    """The Effects a lesson's cascade runs with: sampling ones when its section is configured
    for self-consistency, else the context's own."""
    spec = state.analysis.sections[slot.section_index]
    if not _sampled(ctx, spec.section_type, spec.critical):
        return ctx.effects
    from .lessons import EffectsEmbedder

    outcomes = {state.outcome_id(n): state.outcomes[n - 1].text for n in slot.outcome_numbers}
    embedder = EffectsEmbedder(ctx)

    async def score(draft: LessonDraft) -> float:
        values = await lesson_similarity(draft.content, outcomes, embedder)
        return float(values["similarity"])

    cs = ctx.settings.gates.consistency
    return SamplingEffects(ctx.effects, samples=cs.samples, tiers=cs.tiers, score=score)
