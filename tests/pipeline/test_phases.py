"""Phases 2-5 one at a time, with scripted models behind the real metered calls and ledger."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import pytest

from courseforge.config import Settings
from courseforge.domain import AnalysisResult, LessonPlan
from courseforge.errors import GenerationFailed, ProviderHTTPError
from courseforge.ledger import Ledger
from courseforge.pipeline import CourseState, PipelineContext, plan_lesson_counts, run_pipeline
from courseforge.pipeline.assemble import assemble_course
from courseforge.pipeline.completeness import check_completeness, run_completeness
from courseforge.pipeline.course_checks import EXERCISE_ASKS, cross_artifact_flags, missing_code, run_quality
from courseforge.pipeline.lessons import create_slots, generate_lessons
from courseforge.pipeline.metadata import run_metadata
from courseforge.pipeline.prompts import parse_brief
from courseforge.providers import ChatRequest, Embedder, Vector
from courseforge.providers.embeddings import HashingEmbedder
from courseforge.quality.grounding import source_windows
from courseforge.quality.safety import sentences
from courseforge.testing import CourseAuthor, ScriptedModel
from engine_helpers import course_calls, example_analysis, hosted_settings


class Switch:
    """A script whose behaviour a test can change between phases."""

    def __init__(self, fn: Callable[[ChatRequest], Any] | None = None) -> None:
        self.fn: Callable[[ChatRequest], Any] = fn or CourseAuthor()

    def __call__(self, request: ChatRequest) -> Any:
        return self.fn(request)


class Rig:
    def __init__(
        self,
        analysis: AnalysisResult | None = None,
        settings: Settings | None = None,
        embedder: Embedder | None = None,
    ) -> None:
        self.settings = settings or hosted_settings()
        self.analysis = analysis or example_analysis()
        self.script = Switch()
        self.models = {m: ScriptedModel(self.script, model_id=m) for m in self.settings.models}
        self.ledger = Ledger(Decimal("5"))
        self.effects = course_calls(self.settings, self.models, self.ledger, embedder=embedder)
        self.ctx = PipelineContext(self.settings, self.effects, Decimal("5"))
        self.state = CourseState(
            analysis=self.analysis, course_id="test-course", lesson_counts=plan_lesson_counts(self.analysis)
        )

    def tier_of(self, record_model: str) -> str:
        return next(t for t, m in self.settings.routing.tiers.items() if m == record_model)

    def records(self, task_prefix: str = "", phase: str = "") -> list[Any]:
        return [
            r
            for r in self.ledger.records
            if r.task.startswith(task_prefix) and (not phase or r.phase == phase)
        ]

    def prompts_for(self, task: str) -> list[str]:
        """User prompts of every request tagged with `task`, across models, in no set order."""
        return [
            req.messages[-1].content
            for model in self.models.values()
            for req in model.requests
            if req.tags.get("task") == task
        ]

    def answer_with(self, edit: Callable[[ChatRequest, str], str]) -> None:
        """Every model answers as one `CourseAuthor`, each answer passed through `edit(request, text)`."""
        author = CourseAuthor()
        self.script.fn = lambda request: edit(request, author(request))

    async def through_slots(self) -> None:
        """Phases 1-2 run and the lesson slots created."""
        await run_metadata(self.state, self.ctx)
        create_slots(self.state)

    async def write_lessons(self) -> None:
        """Phase 3 for every slot."""
        await generate_lessons(self.state, self.ctx, list(self.state.slots.values()), "lessons")

    async def through_lessons(self) -> None:
        await self.through_slots()
        await self.write_lessons()


def task_of(request: ChatRequest) -> str:
    return str(parse_brief(request.messages).get("task"))


def refusing(refused: Callable[[ChatRequest], bool], reason: str) -> Callable[[ChatRequest], Any]:
    """`CourseAuthor`'s answers, but a 400 naming `reason` to every request `refused` picks."""
    author = CourseAuthor()
    return lambda request: ProviderHTTPError(400, reason) if refused(request) else author(request)


def lesson_title(request: ChatRequest) -> str:
    return str(parse_brief(request.messages).get("lesson_title", ""))


# -- phase 2: metadata ---------------------------------------------------------------------------


async def test_metadata_critical_on_premium_extras_on_their_tier() -> None:
    rig = Rig()
    await run_metadata(rig.state, rig.ctx)
    routing = rig.settings.routing
    core = rig.records("metadata_core")
    extras = rig.records("metadata_extras")
    assert [(r.tier, r.model, r.outcome) for r in core] == [
        (routing.metadata_tier, routing.tiers[routing.metadata_tier], "ok")
    ]
    assert routing.metadata_tier == "premium"
    assert [(r.tier, r.outcome) for r in extras] == [(routing.metadata_extras_tier, "ok")]
    assert {r.phase for r in rig.ledger.records} == {"metadata"}
    assert rig.state.core is not None and rig.state.extras is not None
    assert not rig.state.flags


async def test_the_inputs_texts_are_embedded_while_the_metadata_calls_are_out() -> None:
    """Issue 29: the sections' "title: key concepts" and the source passages (known from the
    input alone) are embedded while the metadata calls are at the provider: here the metadata
    answer comes only once the last source passage has been asked for."""
    watching = WatchingEmbedder()
    rig = Rig(example_analysis("photosynthesis-sourced"), embedder=watching)
    sources = rig.analysis.source_material
    watching.wanted = sentences(sources[-1].text)[-1]
    author = CourseAuthor()

    async def after_the_inputs(request: ChatRequest) -> str:
        await asyncio.wait_for(watching.asked.wait(), 10)
        return str(author(request))

    rig.script.fn = lambda r: after_the_inputs(r) if task_of(r) == "metadata_core" else author(r)
    await run_metadata(rig.state, rig.ctx)
    [core] = rig.records("metadata_core")
    assert core.outcome == "ok"
    assert rig.state.source_units is not None
    units, vectors = rig.state.source_units
    assert units[-1][2] == watching.wanted and len(vectors) == len(units)


async def test_metadata_structure_matches_plan_and_teaches_every_outcome() -> None:
    rig = Rig(example_analysis(min_lessons=12))  # plan raises 10 requested lessons to 12
    await run_metadata(rig.state, rig.ctx)
    counts = rig.state.lesson_counts
    assert sum(counts) == 12
    assert [len(p.lessons) for p in rig.state.plans] == counts
    assert [p.title for p in rig.state.plans] == [s.title for s in rig.analysis.sections]
    ids = [o.id for o in rig.state.outcomes]
    assert ids == [f"LO{i + 1}" for i in range(len(ids))]
    taught = {o for p in rig.state.plans for lp in p.lessons for o in lp.outcome_ids}
    assert taught == set(ids)
    assert [lp.id for lp in rig.state.plans[0].lessons] == ["S1-L1", "S1-L2", "S1-L3"]


async def test_metadata_structure_normalised_by_rule() -> None:
    rig = Rig()
    author = CourseAuthor()

    def sloppy(request: ChatRequest) -> str:
        text = author(request)
        if task_of(request) != "metadata_core":
            return text
        data = json.loads(text)
        sections = data["sections"]
        sections[0]["lessons"] = sections[0]["lessons"][:1]  # one lesson short
        sections[1]["lessons"] = sections[1]["lessons"] * 2  # two lessons too many
        for s in sections:
            for lesson in s["lessons"]:
                lesson["outcomes"] = [1, 99]  # only outcome 1 taught; 99 does not exist
        return json.dumps(data)

    rig.script.fn = sloppy
    await run_metadata(rig.state, rig.ctx)
    assert [len(p.lessons) for p in rig.state.plans] == rig.state.lesson_counts == [2, 2, 2, 2, 2]
    added = rig.state.plans[0].lessons[1]
    assert added.title.startswith("Getting started: ")
    n_out = len(rig.state.outcomes)
    assert n_out >= 3
    all_ids = [o for p in rig.state.plans for lp in p.lessons for o in lp.outcome_ids]
    assert "LO99" not in all_ids
    assert set(all_ids) == {f"LO{i}" for i in range(1, n_out + 1)}
    fixes = [d for d in rig.state.decisions if d.action == "fix"]
    assert any("added lesson" in d.reason for d in fixes)
    # Outcome 1 alone was claimed: every other outcome reached a lesson through a logged fix.
    fixed = " ".join(d.reason for d in fixes)
    assert all(f"LO{i}" in fixed for i in range(2, n_out + 1))


async def test_metadata_too_few_sections_is_sent_back_with_feedback() -> None:
    rig = Rig()
    author = CourseAuthor()
    calls = Counter[str]()

    def short_first(request: ChatRequest) -> str:
        text = author(request)
        if task_of(request) == "metadata_core":
            calls["core"] += 1
            if calls["core"] == 1:
                data = json.loads(text)
                data["sections"] = data["sections"][:3]
                return json.dumps(data)
        return text

    rig.script.fn = short_first
    await run_metadata(rig.state, rig.ctx)
    core = rig.records("metadata_core")
    assert [r.outcome for r in core] == ["rejected", "ok"]
    assert [r.tier for r in core] == ["premium", "premium"]
    second = [p for p in rig.prompts_for("metadata_core") if "rejected" in p]
    assert second and "needs exactly 5" in second[0]


async def test_metadata_extras_fall_back_by_rule_with_a_review_flag() -> None:
    rig = Rig()
    author = CourseAuthor()
    rig.script.fn = lambda r: "I'd rather not." if task_of(r) == "metadata_extras" else author(r)
    await run_metadata(rig.state, rig.ctx)
    extras = rig.records("metadata_extras")
    assert len(extras) == 3 and all(r.outcome == "rejected" for r in extras)
    # OSS 120B (mid) first (seed 000); a schema failure escalates at once, and on the top tier
    # is asked again with the validation error.
    assert [r.tier for r in extras] == ["mid", "premium", "premium"]
    assert rig.state.extras is not None
    assert rig.state.extras.target_audience == rig.analysis.target_audience
    assert rig.state.extras.time_estimate_minutes == 20 * sum(rig.state.lesson_counts)
    [flag] = rig.state.flags
    assert flag.gate == "metadata_extras" and "filled by rule" in flag.reason
    assert rig.state.core is not None  # the critical fields are unaffected


async def test_metadata_core_failing_everywhere_fails_generation() -> None:
    rig = Rig()
    author = CourseAuthor()
    rig.script.fn = lambda r: ProviderHTTPError(400, "bad") if task_of(r) == "metadata_core" else author(r)
    with pytest.raises(GenerationFailed) as info:
        await run_metadata(rig.state, rig.ctx)
    assert "metadata" in info.value.reason
    # Two attempts (seed 000: `routing.metadata_max_attempts`): premium, then the provider-error
    # fallback a tier down.
    assert [r.tier for r in rig.records("metadata_core")] == ["premium", "mid"]


# -- phase 3: lessons ----------------------------------------------------------------------------


async def test_every_lesson_generated_with_outcomes_and_exercises() -> None:
    rig = Rig()
    await rig.through_lessons()
    slots = list(rig.state.slots.values())
    assert len(slots) == 10
    for slot in slots:
        assert slot.status == "accepted", (slot.id, slot.reason)
        assert slot.draft is not None and slot.draft.exercises
        assert {e.outcome for e in slot.draft.exercises} == set(slot.outcome_numbers)
        assert slot.attempts == 1 and slot.model == rig.settings.routing.tiers[slot.tier]
        assert {g.gate for g in slot.gates} >= {"length", "exercises", "similarity", "exercise_outcomes"}
    # One call per lesson (the critical section's self-consistency second samples aside).
    lesson_records = [r for r in rig.records("lesson:", phase="lessons") if "#s" not in r.task]
    assert len(lesson_records) == 10 and all(r.outcome == "ok" for r in lesson_records)
    routes = [d for d in rig.state.decisions if d.action == "route"]
    assert len(routes) == 10
    warmup = [d for d in routes if d.inputs["section_type"] == "warmup"]
    assert warmup and all(d.tier == "cheap" for d in warmup)


def off_topic_s2_l1(brief: dict[str, Any]) -> bool:
    return brief["section"] == "Making decisions" and "part 1" in brief["lesson_title"]


async def test_off_topic_lesson_is_rejected_escalated_and_flagged_others_unaffected() -> None:
    rig = Rig()
    rig.script.fn = CourseAuthor(off_topic=off_topic_s2_l1)
    await rig.through_lessons()
    bad = rig.state.slots["S2-L1"]
    assert bad.status == "flagged"
    records = rig.records("lesson:S2-L1")
    assert all(r.outcome == "rejected" for r in records)
    assert len(records) == bad.attempts == 3
    ladder = rig.settings.routing.ladder
    assert ladder.index(records[-1].tier) > ladder.index(records[0].tier)  # escalated
    decisions = [d for d in rig.state.decisions if d.task == "lesson:S2-L1"]
    assert "escalate" in [d.action for d in decisions]
    assert decisions[-1].action == "flag"
    similarity = next(g for g in bad.gates if g.gate == "similarity")
    assert not similarity.passed
    # the gate's verdict went back to the model in the next prompt
    assert any("rejected" in p for p in rig.prompts_for("lesson:S2-L1"))
    others = [s for s in rig.state.slots.values() if s.id != "S2-L1"]
    assert all(s.status == "accepted" and s.attempts == 1 for s in others)
    course = assemble_course(rig.state)
    assert course.status == "needs_review"
    assert [f.target for f in course.review] == ["lesson:S2-L1"]


async def test_a_section_whose_calls_fail_does_not_sink_the_others() -> None:
    rig = Rig()
    rig.script.fn = refusing(
        lambda r: task_of(r) == "lesson" and "(Repeating work," in lesson_title(r), "content policy"
    )
    await rig.through_lessons()
    statuses = {s.id: s.status for s in rig.state.slots.values()}
    assert statuses["S3-L1"] == statuses["S3-L2"] == "failed"
    assert all(v == "accepted" for k, v in statuses.items() if not k.startswith("S3-"))
    failed = rig.records("lesson:S3-L1")
    assert failed and all(r.outcome == "error" for r in failed)
    assert "content policy" in failed[0].reason


# -- phase 4: quality ----------------------------------------------------------------------------


async def _planned_with_one_text_for_s1_l1_and_l2(rig: Rig) -> tuple[LessonPlan, LessonPlan, str]:
    """Phases 1-2 run and the slots created; S1-L1, S1-L2 and one text that teaches both lessons'
    outcomes (so each passes its own gates, and the two are duplicates)."""
    await rig.through_slots()
    first, second = rig.state.plans[0].lessons[:2]
    texts = [rig.state.outcomes[int(o[2:]) - 1].text for o in first.outcome_ids + second.outcome_ids]
    shared = " ".join(
        ("Here we " + " and ".join(texts) + ". The key ideas are running Python and variables.").split() * 20
    )[:3900]
    return first, second, shared


async def test_duplicate_lesson_is_regenerated_naming_the_earlier_one() -> None:
    rig = Rig()
    first, second, shared = await _planned_with_one_text_for_s1_l1_and_l2(rig)
    dup_titles = {first.title, second.title}

    def duplicating(request: ChatRequest, text: str) -> str:
        if (
            task_of(request) == "lesson"
            and lesson_title(request) in dup_titles
            and "repeated lesson" not in request.messages[-1].content
        ):
            data = json.loads(text)
            data["content"] = shared
            return json.dumps(data)
        return text

    rig.answer_with(duplicating)
    await rig.write_lessons()
    s1, s2 = rig.state.slots["S1-L1"], rig.state.slots["S1-L2"]
    assert s1.status == s2.status == "accepted"
    assert s1.draft is not None and s2.draft is not None and s1.draft.content == s2.draft.content
    await run_quality(rig.state, rig.ctx)
    regen = {d.task: d for d in rig.state.decisions if d.action == "regenerate"}
    assert regen["lesson:S1-L2"].reason.startswith("duplicate of S1-L1 ")
    assert "lesson:S1-L1" not in regen  # the earlier one stays
    assert s2.rounds == 1 and s1.rounds == 0
    [again] = rig.records("lesson:S1-L2/r1")
    assert again.phase == "quality" and again.outcome == "ok"
    [prompt] = rig.prompts_for("lesson:S1-L2/r1")
    assert "repeated lesson S1-L1" in prompt
    assert s2.draft is not None and s2.draft.content != s1.draft.content
    assert s2.feedback == ""  # consumed by the regeneration


class WatchingEmbedder(Embedder):
    """The hashing embedder, noting every text it is asked for; `asked` is set once `wanted` is."""

    name = "hashing"

    def __init__(self) -> None:
        self.inner = HashingEmbedder()
        self.dimensions = self.inner.dimensions
        self.wanted = ""
        self.asked = asyncio.Event()

    async def embed(self, texts: Sequence[str]) -> list[Vector]:
        if self.wanted in texts:
            self.asked.set()
        return await self.inner.embed(texts)


async def test_the_kept_lessons_exercise_checks_embed_while_a_repeated_lesson_is_rewritten() -> None:
    """Issue 29: phase 4 embeds the kept lessons' sentence windows (for their exercises' answer
    check) while the provider writes the repeated lesson again, not after its answer: here the
    rewrite answers only once a window of the kept S1-L1 has been asked for."""
    watching = WatchingEmbedder()
    rig = Rig(embedder=watching)
    first, second, shared = await _planned_with_one_text_for_s1_l1_and_l2(rig)
    author = CourseAuthor()
    dup_titles = {first.title, second.title}

    async def after_the_windows(request: ChatRequest) -> str:
        await asyncio.wait_for(watching.asked.wait(), 10)
        return str(author(request))

    def duplicating(request: ChatRequest) -> Any:
        if task_of(request) == "lesson" and "repeated lesson" in request.messages[-1].content:
            return after_the_windows(request)
        text = author(request)
        if task_of(request) == "lesson" and lesson_title(request) in dup_titles:
            data = json.loads(text)
            data["content"] = shared
            return json.dumps(data)
        return text

    rig.script.fn = duplicating
    await generate_lessons(rig.state, rig.ctx, list(rig.state.slots.values()), "lessons")
    s1, s2 = rig.state.slots["S1-L1"], rig.state.slots["S1-L2"]
    assert s1.draft is not None and s1.draft.content == shared
    # a window of two sentences: no gate before phase 4 embeds it
    watching.wanted = source_windows({s1.id: s1.draft.content})[-1][1]
    assert not watching.asked.is_set()
    await run_quality(rig.state, rig.ctx)
    [again] = rig.records("lesson:S1-L2/r1")
    assert again.outcome == "ok"
    assert s2.draft is not None and s2.draft.content != shared


async def test_a_rewrite_past_the_length_bound_does_not_replace_the_draft_it_rewrites() -> None:
    """Issue 25: a phase-4 rewrite ran past the cap in both attempts (519, then 622 words over 500)
    and replaced a draft within it. The retry is told the lesson's target; a rewrite that fails
    its gates in every attempt leaves the earlier draft (which passed them), flagged saying so."""
    rig = Rig()
    first, second, shared = await _planned_with_one_text_for_s1_l1_and_l2(rig)

    def duplicating_then_long(request: ChatRequest, text: str) -> str:
        if task_of(request) != "lesson" or lesson_title(request) not in {first.title, second.title}:
            return text
        if "repeated lesson" in request.messages[-1].content:  # the rewrite: over 900 words
            data = json.loads(text)
            return json.dumps({**data, "content": data["content"][:800] + " x is y." * 320})
        return json.dumps({**json.loads(text), "content": shared})

    rig.answer_with(duplicating_then_long)
    await rig.write_lessons()
    s2 = rig.state.slots["S1-L2"]
    assert s2.status == "accepted" and s2.draft is not None and s2.draft.content == shared
    await run_quality(rig.state, rig.ctx)
    rewrites = rig.records("lesson:S1-L2/r1")
    assert len(rewrites) >= 2 and all(r.outcome == "rejected" for r in rewrites)
    assert any("cut it to about 510" in p for p in rig.prompts_for("lesson:S1-L2/r1"))  # the target
    assert s2.status == "flagged" and s2.draft.content == shared  # not replaced by the long one
    assert s2.reason.startswith("its rewrite failed its gates in every attempt (content has ")
    assert "at most 900 allowed" in s2.reason and "repeated lesson S1-L1" in s2.reason
    assert s2.feedback == "" and s2 in rig.state.usable_slots()


async def test_the_quality_phase_cap_refuses_a_regeneration_and_keeps_the_lesson_flagged() -> None:
    """`budget.phase_shares.quality` (issue 26 item 14): a duplicate's regeneration that would pass
    the quality phase's own cap is not sent, though the course's cap has room; the earlier draft
    stays, flagged for a person, and the lessons phase is not touched by that cap."""
    rig = Rig()
    rig.ledger.phase_caps_usd = {"quality": Decimal("0.000001")}
    first, second, shared = await _planned_with_one_text_for_s1_l1_and_l2(rig)

    def duplicating(request: ChatRequest, text: str) -> str:
        if task_of(request) == "lesson" and lesson_title(request) in {first.title, second.title}:
            return json.dumps({**json.loads(text), "content": shared})
        return text

    rig.answer_with(duplicating)
    await rig.write_lessons()
    await run_quality(rig.state, rig.ctx)
    s2 = rig.state.slots["S1-L2"]
    assert [r.outcome for r in rig.records("lesson:S1-L2/r1")] == ["budget_blocked"]
    assert not [r for r in rig.records(phase="quality") if r.outcome != "budget_blocked"]
    assert rig.ledger.committed < rig.ledger.cap_usd  # the course's cap had room: the phase's refused
    assert s2.status == "flagged" and s2.draft is not None and s2.draft.content == shared
    assert "budget" in s2.reason and s2 in rig.state.usable_slots()


async def _through_lessons_answering(edit: Callable[[ChatRequest, str], str]) -> Rig:
    """A rig through phase 3, every answer `CourseAuthor`'s passed through `edit(request, text)`."""
    rig = Rig()
    await rig.through_slots()
    rig.answer_with(edit)
    await rig.write_lessons()
    return rig


_OFF_TOPIC = "Is it true that the volcano on the far side of the moon erupted in 1642?"


def _with_off_topic_exercise(text: str, question: str = _OFF_TOPIC) -> str:
    """A lesson (or exercises) answer whose last exercise the lesson cannot answer."""
    data = json.loads(text)
    off = {
        "type": "true_false",
        "question": question,
        "options": None,
        "answer": "true",
        "explanation": "The far side of the moon had an eruption that year.",
        "outcome": data["exercises"][-1]["outcome"],
    }
    return json.dumps({**data, "exercises": [*data["exercises"][:-1], off]})


async def test_quality_asks_an_unanswerable_exercise_again_alone_and_keeps_the_lesson() -> None:
    """Issue 25: an exercise its lesson cannot answer was flagged after assembly (both session-4
    runs ended in review on one). Phase 4 now asks for that exercise again in an exercises-only
    call given the lesson's text; the lesson and its other exercises stay as they were."""

    def one_off_topic(request: ChatRequest, text: str) -> str:
        if task_of(request) == "lesson" and request.tags.get("task") == "lesson:S1-L1":
            return _with_off_topic_exercise(text)
        return text

    rig = await _through_lessons_answering(one_off_topic)
    slot = rig.state.slots["S1-L1"]
    assert slot.draft is not None and slot.draft.exercises[-1].question == _OFF_TOPIC
    before = slot.draft.model_copy(deep=True)
    await run_quality(rig.state, rig.ctx)
    [call] = rig.records("exercises:S1-L1")
    assert call.phase == "quality" and call.outcome == "ok"
    [prompt] = rig.prompts_for("exercises:S1-L1")
    assert "Write only 1 new exercise(s)" in prompt and _OFF_TOPIC in prompt
    assert not rig.records("lesson:S1-L1/")  # the lesson itself was not asked again
    assert slot.draft.content == before.content
    assert slot.draft.exercises[:-1] == before.exercises[:-1]
    assert slot.draft.exercises[-1].question != _OFF_TOPIC
    [decision] = [d for d in rig.state.decisions if d.inputs.get("kind") == "exercises"]
    assert decision.task == "lesson:S1-L1" and decision.inputs["replaced"] == [len(before.exercises)]
    assert "1 replaced by exercises asked alone" in decision.reason
    course = assemble_course(rig.state)
    assert not [f for f in course.review if f.gate == "cross_artifact:answerable"]
    flags = await cross_artifact_flags(course, rig.settings, rig.ctx.embedder())
    assert not [f for f in flags if f.gate == "cross_artifact:answerable"]


async def test_an_exercise_still_unanswerable_after_its_asks_is_kept_and_flagged() -> None:
    """The replacement must itself be answerable from the lesson: when every ask comes back
    unanswerable too, the old exercise stays and the course check flags it as before."""

    def always_off_topic(request: ChatRequest, text: str) -> str:
        task = request.tags.get("task", "")
        if task in ("lesson:S1-L1", "exercises:S1-L1"):
            return _with_off_topic_exercise(
                text, _OFF_TOPIC if task.startswith("lesson") else _OFF_TOPIC + "!"
            )
        return text

    rig = await _through_lessons_answering(always_off_topic)
    slot = rig.state.slots["S1-L1"]
    await run_quality(rig.state, rig.ctx)
    assert len(rig.records("exercises:S1-L1")) == EXERCISE_ASKS
    assert slot.draft is not None and slot.draft.exercises[-1].question == _OFF_TOPIC
    [decision] = [d for d in rig.state.decisions if d.inputs.get("kind") == "exercises"]
    assert (
        "none replaced" in decision.reason
        and f"{_OFF_TOPIC + '!'!r}: its answer is not stated" in decision.reason
    )
    flags = await cross_artifact_flags(assemble_course(rig.state), rig.settings, rig.ctx.embedder())
    assert [f.target for f in flags if f.gate == "cross_artifact:answerable"] == ["lesson:S1-L1"]


_REPEATED = "Which keyword starts a definition of a reusable block of code in the language?"


def _with_exercise(text: str, question: str) -> str:
    """A lesson answer whose last exercise asks `question` (a plain short answer)."""
    data = json.loads(text)
    last = {**data["exercises"][-1], "type": "short_answer", "options": None, "question": question}
    last["answer"] = "def"
    if "content" in data:  # a lesson answer (an exercises answer has none): it states the key
        data["content"] += (
            "\n\nThe keyword def starts a definition of a reusable block of code in the language."
        )
    return json.dumps({**data, "exercises": [*data["exercises"][:-1], last]})


async def test_an_exercise_repeating_an_earlier_lessons_is_asked_again_alone() -> None:
    """Issue 25: session 5's demo sent four whole lessons back (≈ 310 s each, side by side) for one
    repeated exercise, and one rewrite came back with an exercise its lesson could not answer.
    Now the later lesson's repeated exercise is asked again alone; the lesson stays."""

    def repeating(request: ChatRequest, text: str) -> str:
        if task_of(request) == "lesson" and request.tags.get("task") in ("lesson:S1-L1", "lesson:S1-L2"):
            return _with_exercise(text, _REPEATED)
        return text

    rig = await _through_lessons_answering(repeating)
    first, second = rig.state.slots["S1-L1"], rig.state.slots["S1-L2"]
    assert first.draft is not None and second.draft is not None
    content = second.draft.content
    await run_quality(rig.state, rig.ctx)
    assert not rig.records("exercises:S1-L1")  # the earlier of the pair keeps its exercise
    [call] = rig.records("exercises:S1-L2")
    assert call.phase == "quality" and call.outcome == "ok"
    [prompt] = rig.prompts_for("exercises:S1-L2")
    assert "it repeats exercise S1-L1-E" in prompt and _REPEATED in prompt
    assert not rig.records("lesson:S1-L2/")  # no whole-lesson rewrite
    assert second.draft.content == content and second.draft.exercises[-1].question != _REPEATED
    assert first.draft.exercises[-1].question == _REPEATED


async def test_an_exercise_still_repeated_after_its_asks_sends_its_lesson_back_as_before() -> None:
    def repeating(request: ChatRequest, text: str) -> str:
        if request.tags.get("task", "") in ("lesson:S1-L1", "lesson:S1-L2", "exercises:S1-L2"):
            return _with_exercise(text, _REPEATED)
        return text

    rig = await _through_lessons_answering(repeating)
    await run_quality(rig.state, rig.ctx)
    assert len(rig.records("exercises:S1-L2")) == EXERCISE_ASKS
    [again] = rig.records("lesson:S1-L2/r1")
    assert again.phase == "quality"
    regen = [
        d for d in rig.state.decisions if d.task == "lesson:S1-L2" and d.inputs.get("kind") == "exercise"
    ]
    assert regen and regen[0].reason.startswith("duplicate of S1-L1-E")
    assert any("repeated exercise S1-L1-E" in p for p in rig.prompts_for("lesson:S1-L2/r1"))


@pytest.mark.parametrize(
    ("question", "missing"),
    [
        ("What is the output of the following code?", True),
        ("What is the output of the following while loop?", True),
        ("What does this snippet print?", True),
        ("What is the output of the following code?\n```python\nprint(1)\n```", False),
        ("What does the following code print: `print(1 + 1)`?", False),
        ("Which of the following is the correct syntax for an if statement?", False),
        ("Will the function `add` return a value?", False),
    ],
)
def test_a_question_about_code_it_does_not_quote_is_found(question: str, missing: bool) -> None:
    assert missing_code(question) is missing


async def test_quality_leaves_distinct_lessons_alone() -> None:
    rig = Rig()
    await rig.through_lessons()
    await run_quality(rig.state, rig.ctx)
    lesson_dups = [
        d
        for d in rig.state.decisions
        if d.action == "regenerate" and d.inputs.get("kind", "lesson") == "lesson"
    ]
    assert lesson_dups == []
    assert all(s.status == "accepted" for s in rig.state.slots.values())


# -- phase 5: completeness -----------------------------------------------------------------------


async def test_failed_slot_is_regenerated_in_a_later_round() -> None:
    rig = Rig()
    rig.script.fn = refusing(
        lambda r: r.tags.get("phase") == "lessons" and r.tags.get("task") == "lesson:S4-L2", "refused"
    )
    await rig.through_lessons()
    slot = rig.state.slots["S4-L2"]
    assert slot.status == "failed"
    assert any("9 usable lessons" in p for p in check_completeness(rig.state))
    await run_quality(rig.state, rig.ctx)
    await run_completeness(rig.state, rig.ctx)
    assert slot.status == "accepted" and slot.rounds == 1
    [record] = rig.records("lesson:S4-L2/r1")
    assert record.phase == "completeness" and record.outcome == "ok"
    assert any("earlier attempt at this lesson failed" in p for p in rig.prompts_for("lesson:S4-L2/r1"))
    # only the failed slot was regenerated
    assert {r.task for r in rig.records(phase="completeness")} == {"lesson:S4-L2/r1"}
    assert not rig.state.failure
    assert check_completeness(rig.state) == []
    course = assemble_course(rig.state)
    assert course.status == "approved" and course.review == []
    lessons = course.lessons()
    assert len(lessons) >= rig.analysis.min_lessons
    ids = {o.id for o in course.metadata.learning_outcomes}
    assert {o for lesson in lessons for o in lesson.outcome_ids} == ids
    assert {o for lesson in lessons for e in lesson.exercises for o in e.outcome_ids} == ids
    assert [len(s.lessons) for s in course.sections] == rig.state.lesson_counts


async def test_a_failed_lesson_is_regenerated_a_tier_above_where_it_failed() -> None:
    # S1 is a warmup section: its supplementary lessons start on the cheap tier and may not
    # escalate within an attempt. A lesson the cheap model can never answer in JSON fails
    # phase 3; repeating the same calls in phase 5 would pay for the same failure again.
    rig = Rig()
    author = CourseAuthor()
    cheap = rig.settings.routing.tiers["cheap"]

    def cheap_writes_prose(request: ChatRequest) -> Any:
        if request.tags.get("task", "").startswith("lesson:S1-L2"):
            return "Sorry, I would rather write prose."
        return author(request)

    rig.models[cheap]._script = cheap_writes_prose
    await rig.through_lessons()
    slot = rig.state.slots["S1-L2"]
    assert slot.status == "failed"
    assert {rig.tier_of(r.model) for r in rig.records("lesson:S1-L2", phase="lessons")} == {"cheap"}
    await run_quality(rig.state, rig.ctx)
    await run_completeness(rig.state, rig.ctx)
    assert slot.status == "accepted" and slot.start_tier == "cheap" and slot.tier == "mid"
    again = rig.records("lesson:S1-L2/r1")
    assert again and {rig.tier_of(r.model) for r in again} == {"mid"}
    [step] = [d for d in rig.state.decisions if d.task == "lesson:S1-L2/r1" and d.action == "escalate"]
    assert step.tier == "mid" and step.inputs["from_tier"] == "cheap"
    assert not rig.state.failure


async def test_section_that_never_works_fails_the_course_naming_it() -> None:
    rig = Rig()
    rig.script.fn = refusing(lambda r: task_of(r) == "lesson" and "(Functions," in lesson_title(r), "refused")
    result = await run_pipeline(rig.analysis, "c", rig.ctx)
    assert result.course is None
    assert "'Functions' has no lessons" in result.state.failure
    assert "8 usable lessons, minimum is 10" in result.state.failure
    rounds = {r.task for r in rig.records("lesson:S5-L1")}
    assert rounds == {"lesson:S5-L1", "lesson:S5-L1/r1", "lesson:S5-L1/r2"}  # two repair rounds


async def test_whole_pipeline_approved_when_nothing_flagged() -> None:
    rig = Rig()
    result = await run_pipeline(rig.analysis, "c", rig.ctx)
    assert result.course is not None and result.course.status == "approved"
    assert len(result.course.lessons()) == 10
    assert [s.id for s in result.course.sections] == ["S1", "S2", "S3", "S4", "S5"]
    assert result.course.review == [] and not result.state.failure
    assert {r.phase for r in rig.ledger.records} >= {"metadata", "lessons"}


def test_lesson_schema_narrows_exercise_outcomes_and_citations_per_lesson() -> None:
    from courseforge.pipeline.lessons import lesson_schema, lesson_schema_for

    base = lesson_schema(80, 200, 2)
    no_sources = lesson_schema_for(base, [4, 3, 4], [])
    exercise = no_sources["properties"]["exercises"]["items"]["properties"]
    assert exercise["outcome"]["enum"] == [3, 4]
    assert no_sources["properties"]["citations"]["maxItems"] == 0
    assert no_sources["properties"]["exercises"]["maxItems"] == 2
    with_sources = lesson_schema_for(base, [1], ["src-a", "src-b"])
    assert with_sources["properties"]["citations"]["items"]["enum"] == ["src-a", "src-b"]
    # The cached base schema is never mutated by a narrowing.
    assert "enum" not in base["properties"]["exercises"]["items"]["properties"]["outcome"]


@pytest.mark.parametrize(("coverage", "flagged"), [(0.9, True), (0.8, False)])
async def test_outcome_gaps_within_the_configured_coverage_are_logged_not_flagged(
    coverage: float, flagged: bool
) -> None:
    from courseforge.domain import LearningOutcome

    base = hosted_settings()
    settings = base.model_copy(
        update={
            "gates": base.gates.model_copy(update={"outcome_coverage": coverage}),
            "routing": base.routing.model_copy(update={"completeness_rounds": 0}),
        }
    )
    rig = Rig(settings=settings)
    rig.script.fn = CourseAuthor()
    await rig.through_lessons()
    n = len(rig.state.outcomes)
    # One more outcome that no lesson teaches: coverage n / (n + 1), 6/7 = 86 % here.
    rig.state.outcomes.append(
        LearningOutcome(id=f"LO{n + 1}", text="Evaluate an extra goal", bloom_level="evaluate")
    )
    assert 0.8 <= n / (n + 1) < 0.9
    await run_completeness(rig.state, rig.ctx)
    gap = [f for f in rig.state.flags if f.gate == "completeness"]
    assert bool(gap) is flagged
    logged = [d for d in rig.state.decisions if d.action == "accept" and f"LO{n + 1}" in d.reason]
    assert bool(logged) is not flagged


def test_a_rewrite_failing_any_gate_keeps_only_a_draft_that_passed_them() -> None:
    """Session 4's spanish-a1 S4-L1: its phase-4 rewrite announced instead of teaching, then ran
    to 600 words, and the announcing attempt replaced a draft that had passed every gate."""
    from courseforge.domain.drafts import LessonDraft
    from courseforge.pipeline.lessons import _failed_rewrite
    from courseforge.pipeline.state import LessonSlot
    from courseforge.quality.base import GateResult
    from courseforge.routing import TaskResult, Verdict

    teaches = GateResult("teaches", False, 0.69, ["it announces instead of teaching"], "fail")
    kept = Verdict(False, 0.7, feedback="", details=[GateResult("length", True, 309.0, [], "pass"), teaches])
    draft = LessonDraft.model_construct(content="x " * 120, exercises=[])
    result: TaskResult[LessonDraft] = TaskResult(
        "flagged", draft, kept, "premium", "m", 2, "2 attempts used", [], []
    )
    slot = LessonSlot("S4-L1", 3, "Ser", [1])
    slot.draft, slot.gates = draft, [GateResult("teaches", True, 0.1, [], "pass")]
    assert _failed_rewrite(slot, result, "quality") == [teaches]
    assert _failed_rewrite(slot, result, "lessons") == []  # a first generation keeps its best
    slot.gates = [GateResult("length", False, 600.0, ["content has 600 words"], "fail")]
    assert _failed_rewrite(slot, result, "quality") == []  # the earlier draft failed too
    passed = TaskResult("accepted", draft, Verdict(True, 0.9, details=[]), "premium", "m", 1, "ok", [], [])
    assert _failed_rewrite(slot, passed, "quality") == []
