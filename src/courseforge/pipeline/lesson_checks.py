"""How phase 3 checks one lesson attempt: rule repairs, then the one gate list
(`quality.lesson_gates`) with the LLM judge where it is wanted, and self-consistency sampling.

- Repairs by rule (answer-key slips, exercise labels by meaning) are logged as `fix` decisions
  and cost no regeneration.
- The judge gates a lesson whose similarity is borderline, whose claims the embeddings cannot
  settle, or every lesson when `gates.judge.always`; a lesson only in the calibration sample is
  judged beside the pipeline (a stronger judge as the ground truth), never gating it.
- Self-consistency: a lesson of a configured section type draws several samples per call on a
  sampled tier; the best-scoring one goes on, the others stay on the bill as rejected, and how
  far the samples disagreed is handed to the consistency gate with that draft.

Everything a check needs travels in its arguments (the attempt's `CallSpec` says its phase,
round and tier): nothing is kept between courses.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace

from ..domain import Decision
from ..domain.drafts import LessonDraft
from ..domain.tasks import lesson_key
from ..errors import BadResponse, ProviderError
from ..providers.effects import CallResult, CallSpec
from ..providers.embeddings import cosine
from ..quality.base import GateContext, GateResult
from ..quality.gates import (
    feedback_text,
    lesson_similarity,
    repair_exercise,
    thresholds_for,
    trim_to_complete,
    word_count,
)
from ..quality.grounding import ClaimSupport, apply_judgement
from ..quality.judge import JudgeDraft, JudgeGate, composite, in_sample
from ..quality.lesson_gates import JudgeOutcome, LessonUnderTest, run_lesson_gates
from ..quality.redundancy import min_pairwise_cosine, text_vectors
from ..routing import Verdict
from .judging import judge_lesson, judge_tier
from .parsing import parser_for
from .state import CourseState, LessonSlot, PipelineContext

__all__ = [
    "LessonJudge",
    "borderline_accepted",
    "check_lesson",
    "draw_samples",
    "is_sampled",
    "relabel_exercises",
    "tier_bar",
]

Call = Callable[[CallSpec], Awaitable[CallResult]]


async def relabel_exercises(
    state: CourseState, slot: LessonSlot, draft: LessonDraft, ctx: PipelineContext
) -> str | None:
    """Small models often tag every exercise with the lesson's first outcome. When the lesson has
    as many exercises as outcomes but some outcome is named by none, the exercises' `outcome`
    labels are reassigned by meaning (the one-to-one match of exercises to outcomes with the
    highest total cosine of "question answer" to outcome text), so that each outcome gets the
    exercise closest to it; only when every newly assessed outcome gets an exercise at least at
    the similarity gate's severe threshold (else the coverage gate still fails it). Returns what
    changed, or None."""
    wanted = sorted(set(slot.outcome_numbers))
    exercises = draft.exercises
    if len(wanted) < 2 or len(exercises) < len(wanted):
        return None
    before = [e.outcome for e in exercises]
    if not set(wanted) - set(before):
        return None
    severe = thresholds_for(ctx.settings.gates, ctx.settings.gates.embedding_model).severe_below
    texts = [f"{e.question} {e.answer}" for e in exercises] + [state.outcomes[n - 1].text for n in wanted]
    vectors = await ctx.effects.embed(texts)
    ex_vecs, out_vecs = vectors[: len(exercises)], vectors[len(exercises) :]
    score = [[cosine(ev, ov) for ov in out_vecs] for ev in ex_vecs]
    best = max(
        itertools.permutations(range(len(exercises)), len(wanted)),
        key=lambda chosen: sum(score[e][o] for o, e in enumerate(chosen)),
    )
    if any(score[e][o] < severe for o, e in enumerate(best) if wanted[o] not in before):
        return None
    for o, e in enumerate(best):
        exercises[e].outcome = wanted[o]
    after = [e.outcome for e in exercises]
    return f"exercise outcomes {before} relabelled by meaning to {after}"


def lesson_under_test(
    state: CourseState, slot: LessonSlot, draft: LessonDraft, consistency: float | None = None
) -> LessonUnderTest:
    return LessonUnderTest(
        lesson_id=slot.id,
        draft=draft,
        outcome_numbers=list(slot.outcome_numbers),
        outcomes={state.outcome_id(n): state.outcomes[n - 1].text for n in slot.outcome_numbers},
        # Graded against what the lesson was shown (its excerpts), not every source's full text.
        sources=(
            {sid: text for sid, _, text in slot.excerpts}
            if slot.excerpts is not None
            else {m.id: m.text for m in state.analysis.source_material}
        ),
        consistency=consistency,
        rivals=rival_outcomes(state, slot.section_index),
        titles=outcome_titles(state, slot),
    )


def outcome_titles(state: CourseState, slot: LessonSlot) -> dict[str, str]:
    """Outcome id -> the title of a lesson planned to teach it (this lesson's own title for its
    outcomes, else the first planned lesson's): read by `titled` similarity thresholds."""
    titles: dict[str, str] = {}
    for s in [slot, *state.slots.values()]:
        for n in s.outcome_numbers:
            titles.setdefault(state.outcome_id(n), s.title)
    return titles


def rival_outcomes(state: CourseState, section_index: int) -> dict[str, str]:
    """The course's outcomes no lesson of this section teaches (id -> text)."""
    own = {n for s in state.slots_in(section_index) for n in s.outcome_numbers}
    return {o.id: o.text for n, o in enumerate(state.outcomes, start=1) if n not in own}


async def check_lesson(
    state: CourseState,
    slot: LessonSlot,
    draft: LessonDraft,
    ctx: PipelineContext,
    spec: CallSpec,
    *,
    consistency: float | None = None,
) -> Verdict:
    """The verdict on one attempt (`spec`: the call that wrote `draft`)."""
    task = spec.task.base.key()  # the attempt's own key: its fixes are logged under it
    trimmed = trim_to_complete(draft.content)
    if trimmed is not None:
        before = word_count(draft.content)
        draft.content = trimmed
        state.decisions.append(
            Decision.fix(
                task,
                f"content cut off mid-sentence: trimmed to its last complete sentence ({before} -> {word_count(trimmed)} words)",
            )
        )
    for number, exercise in enumerate(draft.exercises, start=1):
        repaired = repair_exercise(exercise)
        if repaired:
            state.decisions.append(Decision.fix(task, f"exercise {number}: {repaired}"))
    relabelled = await relabel_exercises(state, slot, draft, ctx)
    if relabelled:
        state.decisions.append(Decision.fix(task, relabelled))
    judge = LessonJudge(state, ctx, spec) if ctx.settings.gates.judge.enabled else None
    results = await run_lesson_gates(
        lesson_under_test(state, slot, draft, consistency),
        settings=ctx.settings,
        embedder=ctx.embedder(),
        blocking=ctx.effects.run_blocking,
        judge=judge,
    )
    results = tier_bar(results, ctx, spec.tier)
    failed = [r for r in results if not r.passed]
    similarity = next((r.score for r in results if r.gate == "similarity"), None)
    return Verdict(
        passed=not failed,
        score=similarity,
        severe=any(r.verdict == "severe" for r in failed),
        feedback=feedback_text(failed) if failed else "",
        details=results,
    )


def tier_bar(results: list[GateResult], ctx: PipelineContext, tier: str) -> list[GateResult]:
    """The per-tier similarity bar: a lesson written on a tier with its own pass mark
    (`gates.similarity.<embedder>.pass_at_by_tier`) fails a similarity the common mark passed."""
    gates = ctx.settings.gates
    bar = thresholds_for(gates, gates.embedding_model).pass_at_by_tier.get(tier)
    if bar is None:
        return results
    out = []
    for r in results:
        if r.gate == "similarity" and r.passed and r.score is not None and r.score < bar:
            r = replace(
                r,
                passed=False,
                verdict="fail",
                threshold=bar,
                reasons=[
                    *r.reasons,
                    f"similarity {r.score:.2f} < {bar:.2f}, the {tier} tier's bar (a tier can hold its own, higher pass mark)",
                ],
            )
        out.append(r)
    return out


def borderline_accepted(gates: Sequence[GateResult]) -> bool:
    """Did the judge accept this lesson on a borderline similarity (it proceeds, with a flag)?"""
    return any(g.gate == "similarity" and g.passed and g.verdict == "borderline" for g in gates)


class LessonJudge:
    """The judge as phase 3 runs it for one attempt (see the module docstring)."""

    def __init__(self, state: CourseState, ctx: PipelineContext, spec: CallSpec) -> None:
        self.state, self.ctx, self.spec = state, ctx, spec

    async def __call__(
        self, lesson: LessonUnderTest, first: Sequence[GateResult], claims: list[ClaimSupport]
    ) -> JudgeOutcome:
        ctx, settings = self.ctx, self.ctx.settings
        js, gs = settings.gates.judge, settings.gates.grounding
        tier = judge_tier(settings, self.spec.tier)
        sim = next((r for r in first if r.gate == "similarity"), None)
        similarity = sim.score if sim is not None else None
        band = js.borderline.get(ctx.embedder().name)
        borderline = bool(band and similarity is not None and band[0] <= similarity < band[1]) or bool(
            sim is not None and not sim.passed and sim.verdict == "borderline"
        )
        uncertain = [i for i, c in enumerate(claims) if c.status == "uncertain"][: gs.max_judged_claims]
        asked = [claims[i] for i in uncertain] if gs.judge_uncertain else []
        sampled = in_sample(f"{self.state.course_id}/{lesson.lesson_id}", js.sample_rate)
        if tier is None:
            return JudgeOutcome(None, None, claims)
        if js.always or borderline or asked:
            gate, settled, judged = await self._judge(
                lesson, first, claims, tier, borderline, asked, uncertain, sampled
            )
            return JudgeOutcome(gate, settled, judged)
        if sampled:
            # Calibration only: judged beside the pipeline, counted in the report, never gating
            # this lesson, so it stays off the critical path. Awaited before assembly.
            async def calibrate() -> None:
                await self._judge(lesson, first, claims, tier, False, [], [], True, background=True)

            self.state.background.append(asyncio.ensure_future(calibrate()))
        return JudgeOutcome(None, None, claims)

    async def _judge(
        self,
        lesson: LessonUnderTest,
        first: Sequence[GateResult],
        claims: list[ClaimSupport],
        tier: str,
        borderline: bool,
        asked: list[ClaimSupport],
        uncertain: list[int],
        sampled: bool,
        *,
        background: bool = False,
    ) -> tuple[GateResult | None, GateResult | None, list[ClaimSupport]]:
        settings, js, spec = self.ctx.settings, self.ctx.settings.gates.judge, self.spec
        # The calibration sample's reference: the premium tier (or the configured stronger one),
        # never of the generator's family (`judging.reference_tier`).
        strong = judge_tier(settings, spec.tier, strong=True) if sampled else None
        tiers = [tier] + ([strong] if strong and strong != tier else [])
        sources = lesson.sources if asked else None
        verdicts = await asyncio.gather(
            *(
                judge_lesson(
                    self.ctx,
                    phase=spec.phase,
                    round=spec.round,
                    lesson_id=lesson.lesson_id,
                    lesson=lesson.draft,
                    outcomes=lesson.outcomes,
                    tier=t,
                    claims=asked,
                    sources=sources,
                    strong=t != tier,
                    decisions=self.state.decisions,
                )
                for t in tiers
            )
        )
        verdict, strong_verdict = verdicts[0], (verdicts[1] if len(verdicts) > 1 else None)
        if verdict is None and strong_verdict is None:
            return None, None, claims
        # The per-tier bar (a premium lesson needs composite 4.0) and per-dimension floors.
        gate = JudgeGate(
            js.pass_composite_by_tier.get(spec.tier, js.pass_composite), js.min_correctness, js.floors
        )
        # The reference verdict is recorded beside the judge's, never substituted for it: the
        # gate, the borderline settlement and the claims go by the judge that gates every lesson.
        judged = gate.check(lesson.draft, GateContext(values={"judge": verdict})) if verdict else None
        sim = next((r for r in first if r.gate == "similarity"), None)
        settled = None
        if judged is not None and borderline and sim is not None and not sim.passed:
            assert sim.score is not None
            note = f"borderline similarity {sim.score:.2f}: judge composite {judged.score:.2f} " + (
                "accepts it" if judged.passed else "rejects it"
            )
            # The judge's concerns on a borderline lesson escalate at once
            # (severe: to the best tier allowed), rather than a retry on the same tier.
            concerns = not judged.passed and js.escalate_on_concerns
            settled = replace(
                sim,
                passed=judged.passed,
                verdict="severe" if concerns else "borderline",
                reasons=[note] if judged.passed else [*sim.reasons, note],
            )
        if verdict is not None:
            answers = {
                uncertain[c.number - 1]: c.supported for c in verdict.claims if c.number <= len(uncertain)
            }
            claims = apply_judgement(claims, answers)

        def passes(v: JudgeDraft | None) -> bool | None:
            return gate.check(lesson.draft, GateContext(values={"judge": v})).passed if v else None

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
        self.state.decisions.append(
            Decision(
                task=lesson_key(lesson.lesson_id),
                action="judge_calibration" if background else "judge_sample" if sampled else "judge",
                tier=tier,
                reason=", ".join(why),
                inputs={
                    "gates_passed": all(r.passed for r in first),
                    "similarity": sim.score if sim is not None else None,
                    "judge_passed": passes(verdict),
                    "judge_composite": composite(verdict) if verdict else None,
                    **(
                        {
                            "strong_tier": tiers[1],
                            "strong_model": settings.routing.tiers[tiers[1]],
                            "strong_passed": passes(strong_verdict),
                            "strong_composite": composite(strong_verdict) if strong_verdict else None,
                        }
                        if len(tiers) > 1
                        else {"strong_tier": None, "strong_passed": None}
                        if sampled
                        else {}
                    ),
                },
            )
        )
        return judged, settled, claims


# -- self-consistency ---------------------------------------------------------------------------
def is_sampled(ctx: PipelineContext, section_type: str, critical: bool) -> bool:
    """Does a lesson of this section draw self-consistency samples (`gates.consistency`)?"""
    cs = ctx.settings.gates.consistency
    return cs.all_sections or section_type in cs.section_types or (cs.critical and critical)


async def draw_samples(
    call: Call,
    spec: CallSpec,
    *,
    samples: int,
    ctx: PipelineContext,
    outcomes: dict[str, str],
) -> tuple[CallResult, float | None]:
    """`samples` answers to one attempt, sent together: the one closest to the outcomes goes on,
    the others are marked rejected (they stay on the bill). Returns the chosen call and the
    lowest pairwise cosine of the usable samples (None when fewer than two parsed)."""
    extra = [replace(spec, task=spec.task.with_sample(k)) for k in range(2, samples + 1)]
    first, *others = await asyncio.gather(call(spec), *(call(s) for s in extra), return_exceptions=True)
    parse = parser_for(LessonDraft)
    candidates: list[tuple[CallResult, LessonDraft]] = []
    for result in [first, *others]:
        if isinstance(result, BaseException):
            if not isinstance(result, ProviderError):
                raise result
            continue
        try:
            candidates.append((result, parse(result.response.text)))
        except (ValueError, BadResponse):
            continue
    if len(candidates) < 2:
        # One usable sample (the others broken, truncated or failed): it goes on, no retry.
        if candidates and candidates[0][0] is not first:
            if not isinstance(first, BaseException):
                first.reject("self-consistency: sample 1 unusable, another sample kept")
            return candidates[0][0], None
        if isinstance(first, BaseException):
            raise first
        return first, None
    vectors = await text_vectors([d.content for _, d in candidates], ctx.effects)
    agreement = min_pairwise_cosine(vectors)
    embedder = ctx.embedder()
    scores = [
        float((await lesson_similarity(d.content, outcomes, embedder))["similarity"]) for _, d in candidates
    ]
    best = max(range(len(candidates)), key=scores.__getitem__)
    for i, (result, _) in enumerate(candidates):
        if i != best:
            result.reject(f"self-consistency: sample {i + 1} of {len(candidates)} not kept")
    return candidates[best][0], round(agreement, 4)
