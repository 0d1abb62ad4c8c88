"""Rule-based repairs of the metadata: Bloom levels follow the verb; an outcome no lesson
teaches goes to the lesson closest to it in meaning, never to an arbitrary one."""

from __future__ import annotations

from decimal import Decimal

from courseforge.domain.drafts import (
    MAX_OUTCOMES,
    LessonPlanDraft,
    MetadataCoreDraft,
    OutcomeDraft,
    SectionPlanDraft,
)
from courseforge.pipeline import CourseState, PipelineContext, validate_analysis
from courseforge.pipeline.metadata import (
    _check_core,
    _drop_surplus_outcomes,
    _fix_bloom_levels,
    _normalise_structure,
    _placements,
    _retitle_misplaced,
    core_schema,
)
from courseforge.quality.base import GateContext
from courseforge.quality.gates import OutcomesGate
from engine_helpers import EmbedOnly, hosted_settings


def _state() -> CourseState:
    analysis = validate_analysis(
        {
            "topic": "Python basics",
            "target_audience": "beginners",
            "min_lessons": 2,
            "sections": [
                {"title": "Loops", "key_concepts": ["for loops", "while loops"], "lesson_count": 1},
                {
                    "title": "Dictionaries",
                    "key_concepts": ["dictionary keys", "dictionary values"],
                    "lesson_count": 1,
                },
            ],
        }
    )
    return CourseState(analysis=analysis, course_id="c", lesson_counts=[1, 1])


def _draft(outcomes: list[OutcomeDraft], plans: list[list[int]]) -> MetadataCoreDraft:
    titles = ["Repeating work with for loops", "Storing data in dictionary keys and values"]
    return MetadataCoreDraft(
        course_title="Python basics course",
        description="A short course on Python basics for beginners who want to automate things.",
        learning_outcomes=outcomes,
        pedagogical_strategy="Worked examples first, then short exercises that check each outcome directly.",
        domain_taxonomy=["python", "loops"],
        sections=[
            SectionPlanDraft(summary=f"Section about {t}.", lessons=[LessonPlanDraft(title=t, outcomes=o)])
            for t, o in zip(titles, plans, strict=True)
        ],
    )


def test_measurable_verb_under_the_wrong_level_is_corrected_and_logged() -> None:
    state = _state()
    draft = _draft(
        [
            OutcomeDraft(text="Identify the parts of a for loop", bloom_level="understand"),
            OutcomeDraft(text="Explain how dictionary keys work", bloom_level="understand"),
            OutcomeDraft(text="Design a small script using loops", bloom_level="apply"),
        ],
        [[1], [2]],
    )
    _fix_bloom_levels(state, draft)
    assert [o.bloom_level for o in draft.learning_outcomes] == ["remember", "understand", "create"]
    fixes = [d.reason for d in state.decisions if d.action == "fix"]
    assert len(fixes) == 2 and "'identify' is a remember verb" in fixes[0]


async def test_untaught_outcome_goes_to_the_closest_lesson() -> None:
    state = _state()
    draft = _draft(
        [
            OutcomeDraft(text="Write a for loop over a list", bloom_level="apply"),
            OutcomeDraft(text="Explain what a variable is", bloom_level="understand"),
            OutcomeDraft(text="Use dictionary keys and values to store data", bloom_level="apply"),
        ],
        [[1], [2]],  # outcome 3 is taught by no lesson
    )
    ctx = PipelineContext(hosted_settings(), EmbedOnly(), Decimal(1))  # type: ignore[arg-type]
    placements, reassigned = await _placements(state, draft, ctx)
    # "variables" is implausible for the dictionaries lesson: it gets the dictionaries outcome,
    assert reassigned == {(1, 0): [3]}
    # and LO2, now taught by no lesson, goes to the lesson closest to it.
    assert placements == {2: (0, 0)}
    decisions = _normalise_structure(state, draft, placements, reassigned)
    assert state.plans[1].lessons[0].outcome_ids == ["LO3"]
    assert state.plans[0].lessons[0].outcome_ids == ["LO1", "LO2"]
    assert any("LO3" in d.reason and "S2-L1" in d.reason for d in decisions)


async def test_lesson_without_a_valid_outcome_gets_the_closest_one() -> None:
    state = _state()
    draft = _draft(
        [
            OutcomeDraft(text="Write a for loop over a list", bloom_level="apply"),
            OutcomeDraft(text="Use dictionary keys and values to store data", bloom_level="apply"),
            OutcomeDraft(text="Explain what a variable is", bloom_level="understand"),
        ],
        [[1, 3], [7, 9]],  # a small model numbered lessons, not outcomes: 7 and 9 do not exist
    )
    ctx = PipelineContext(hosted_settings(), EmbedOnly(), Decimal(1))  # type: ignore[arg-type]
    placements, reassigned = await _placements(state, draft, ctx)
    assert reassigned[(1, 0)] == [2]  # the dictionaries lesson gets the dictionaries outcome
    assert 2 not in placements  # ... so LO2 is taught and needs no placement
    _normalise_structure(state, draft, placements, reassigned)
    assert state.plans[1].lessons[0].outcome_ids == ["LO2"]


async def test_a_section_no_outcome_is_about_gets_one_built_from_its_key_concepts() -> None:
    state = _state()
    ctx = PipelineContext(hosted_settings(), EmbedOnly(), Decimal(1))  # type: ignore[arg-type]
    loops_only = _draft(
        [
            OutcomeDraft(text="Write for loops and while loops over a list", bloom_level="apply"),
            OutcomeDraft(text="Explain when a while loop stops", bloom_level="understand"),
            OutcomeDraft(text="Compare for loops with while loops", bloom_level="analyze"),
        ],
        [[1], [2]],
    )
    verdict = await _check_core(state, loops_only, ctx)
    assert verdict.passed  # repaired by rule, not asked again
    added = loops_only.learning_outcomes[3]
    assert added.text == "Explain dictionary keys and dictionary values with a worked example"
    assert added.bloom_level == "understand" and len(loops_only.learning_outcomes) == 4
    fixes = [d.reason for d in state.decisions if d.action == "fix" and "subject of no outcome" in d.reason]
    assert len(fixes) == 1 and fixes[0].startswith(
        "section 2 (Dictionaries: dictionary keys, dictionary values)"
    )

    one_per_section = _draft(
        [
            OutcomeDraft(text="Write for loops and while loops over a list", bloom_level="apply"),
            OutcomeDraft(text="Use dictionary keys and dictionary values to store data", bloom_level="apply"),
            OutcomeDraft(text="Compare for loops with while loops", bloom_level="analyze"),
        ],
        [[1, 3], [2]],
    )
    assert (await _check_core(state, one_per_section, ctx)).passed
    assert len(one_per_section.learning_outcomes) == 3  # nothing added where every section has one


def test_core_schema_asks_for_an_outcome_and_a_plan_per_section() -> None:
    schema = core_schema(5)
    assert schema["properties"]["learning_outcomes"]["minItems"] == 5
    assert schema["properties"]["learning_outcomes"]["maxItems"] == MAX_OUTCOMES  # room for extras
    local = core_schema(5, exact=True)  # a grammar-bound local model: one per section, no more
    assert local["properties"]["learning_outcomes"]["minItems"] == 5
    assert local["properties"]["learning_outcomes"]["maxItems"] == 5
    assert schema["properties"]["sections"]["minItems"] == 5
    # More sections than outcomes can exist: then only the usual 3-12 outcomes.
    many = core_schema(MAX_OUTCOMES + 3)
    assert many["properties"]["learning_outcomes"]["minItems"] == 3
    assert many["properties"]["sections"]["minItems"] == MAX_OUTCOMES + 3


async def test_untaught_outcomes_go_only_to_lessons_that_can_still_assess_them() -> None:
    """With two exercises per lesson, a lesson can assess at most two outcomes: the second
    loops outcome, closest to the loops lesson, goes to the next closest lesson instead."""
    state = _state()
    settings = hosted_settings()
    settings = settings.model_copy(update={"gates": settings.gates.model_copy(update={"max_exercises": 2})})
    draft = _draft(
        [
            OutcomeDraft(text="Write a for loop over a list", bloom_level="apply"),
            OutcomeDraft(text="Use dictionary keys and values to store data", bloom_level="apply"),
            OutcomeDraft(text="Explain when a while loop stops", bloom_level="understand"),
            OutcomeDraft(text="Compare for loops with while loops", bloom_level="analyze"),
        ],
        [[1], [2]],
    )
    ctx = PipelineContext(settings, EmbedOnly(), Decimal(1))  # type: ignore[arg-type]
    placements, reassigned = await _placements(state, draft, ctx)
    _normalise_structure(state, draft, placements, reassigned)
    given = [lp.outcome_ids for p in state.plans for lp in p.lessons]
    assert sorted(o for ids in given for o in ids) == ["LO1", "LO2", "LO3", "LO4"]  # all taught
    assert [len(ids) for ids in given] == [2, 2]  # and none beyond two per lesson
    assert "LO2" in given[1]  # the dictionaries lesson keeps its own outcome


async def test_claims_beyond_what_a_lesson_can_assess_keep_the_closest() -> None:
    state = _state()
    settings = hosted_settings()
    settings = settings.model_copy(update={"gates": settings.gates.model_copy(update={"max_exercises": 1})})
    draft = _draft(
        [
            OutcomeDraft(text="Write a for loop over a list", bloom_level="apply"),
            OutcomeDraft(text="Use dictionary keys and values to store data", bloom_level="apply"),
            OutcomeDraft(text="Write for loops and while loops", bloom_level="apply"),
        ],
        [[1, 3], [2]],
    )
    ctx = PipelineContext(settings, EmbedOnly(), Decimal(1))  # type: ignore[arg-type]
    _, reassigned = await _placements(state, draft, ctx)
    assert len(reassigned[(0, 0)]) == 1 and reassigned[(0, 0)][0] in (1, 3)


def test_understand_is_reworded_to_explain_and_then_passes_the_outcome_gate() -> None:
    state = _state()
    draft = _draft(
        [
            OutcomeDraft(text="Understand how a while loop stops", bloom_level="apply"),
            OutcomeDraft(text="Use dictionary keys and values to store data", bloom_level="apply"),
            OutcomeDraft(text="Understanding matters when you write for loops", bloom_level="apply"),
            OutcomeDraft(text="Compare for loops with while loops", bloom_level="analyze"),
        ],
        [[1], [2]],
    )
    _fix_bloom_levels(state, draft)
    assert draft.learning_outcomes[0].text == "Explain how a while loop stops"
    assert draft.learning_outcomes[0].bloom_level == "understand"  # then the level follows the verb
    assert draft.learning_outcomes[2].text.startswith("Understanding")  # only the bare verb is reworded
    assert any("'Understand' is not measurable" in d.reason for d in state.decisions)
    kept = [o for i, o in enumerate(draft.learning_outcomes) if i != 2]
    assert OutcomesGate().check(kept, GateContext()).passed


async def test_lesson_title_belonging_to_another_section_is_retitled() -> None:
    state = _state()
    ctx = PipelineContext(hosted_settings(), EmbedOnly(), Decimal(1))  # type: ignore[arg-type]
    draft = _draft(
        [
            OutcomeDraft(text="Write for loops and while loops", bloom_level="apply"),
            OutcomeDraft(text="Use dictionary keys and dictionary values", bloom_level="apply"),
            OutcomeDraft(text="Compare for loops with while loops", bloom_level="analyze"),
        ],
        [[1], [2]],
    )
    # Shifted: the loops section got the dictionaries lesson's title.
    draft.sections[0].lessons[0].title = "Storing data in dictionary keys and dictionary values"
    fixes = await _retitle_misplaced(state, draft, ctx)
    assert draft.sections[0].lessons[0].title == "Loops: for loops"
    assert draft.sections[1].lessons[0].title == "Storing data in dictionary keys and values"  # fits: kept
    assert len(fixes) == 1 and "S1-L1" in fixes[0].reason and "section 2" in fixes[0].reason


async def test_surplus_outcomes_that_fit_no_section_are_dropped_and_claims_renumbered() -> None:
    state = _state()
    ctx = PipelineContext(hosted_settings(), EmbedOnly(), Decimal(1))  # type: ignore[arg-type]
    draft = _draft(
        [
            OutcomeDraft(text="Write for loops and while loops", bloom_level="apply"),
            OutcomeDraft(text="Deploy containers to a cloud cluster", bloom_level="apply"),
            OutcomeDraft(text="Use dictionary keys and dictionary values", bloom_level="apply"),
            OutcomeDraft(text="Configure a kubernetes ingress certificate", bloom_level="apply"),
            OutcomeDraft(text="Compare for loops with while loops", bloom_level="analyze"),
        ],
        [[1, 2], [3, 4]],
    )
    fixes = await _drop_surplus_outcomes(state, draft, ctx)
    assert [o.text for o in draft.learning_outcomes] == [
        "Write for loops and while loops",
        "Use dictionary keys and dictionary values",
        "Compare for loops with while loops",
    ]
    assert [lp.outcomes for plan in draft.sections for lp in plan.lessons] == [[1], [2]]
    assert len(fixes) == 2 and all("dropped" in f.reason for f in fixes)
    # Never below one per section (or 3): nothing more to drop.
    assert await _drop_surplus_outcomes(state, draft, ctx) == []


def test_an_outcome_opening_with_a_verb_bloom_does_not_list_gets_its_levels_lead_in() -> None:
    """The offline model's "Repeat work using for and while loops" sent its whole metadata back."""
    state = _state()
    draft = _draft(
        [
            OutcomeDraft(text="Repeat work using for and while loops", bloom_level="apply"),
            OutcomeDraft(text="Read values from dictionary keys", bloom_level="remember"),
            OutcomeDraft(text="Use dictionary keys and values to store data", bloom_level="apply"),
        ],
        [[1], [2]],
    )
    assert not OutcomesGate().check(draft.learning_outcomes, GateContext()).passed
    _fix_bloom_levels(state, draft)
    texts = [o.text for o in draft.learning_outcomes]
    assert texts[0] == "Demonstrate how to repeat work using for and while loops"
    assert texts[1] == "Describe how to read values from dictionary keys"
    assert texts[2] == "Use dictionary keys and values to store data"  # measurable already
    assert [o.bloom_level for o in draft.learning_outcomes] == ["apply", "remember", "apply"]
    assert OutcomesGate().check(draft.learning_outcomes, GateContext()).passed
    assert sum("'Repeat' is not measurable" in d.reason for d in state.decisions) == 1


def test_an_outcome_opening_learn_how_to_gets_its_levels_lead_in() -> None:
    """Session 4's demo: "Learn how to input data …" sent the metadata back, then flagged it."""
    state = _state()
    draft = _draft(
        [
            OutcomeDraft(text="Learn how to input data from the user", bloom_level="understand"),
            OutcomeDraft(text="Learn to write for loops", bloom_level="apply"),
            OutcomeDraft(text="Learn the basics of Python", bloom_level="understand"),
        ],
        [[1], [2]],
    )
    _fix_bloom_levels(state, draft)
    texts = [o.text for o in draft.learning_outcomes]
    assert texts[:2] == ["Explain how to input data from the user", "Demonstrate how to write for loops"]
    assert texts[2] == "Learn the basics of Python"  # no doing named: still the gate's to refuse
    result = OutcomesGate().check(draft.learning_outcomes, GateContext())
    assert not result.passed and result.reasons == [
        "outcome 3: 'learn' is not measurable; for understand, use e.g. explain, summarize, classify"
    ]


async def test_a_lesson_title_about_no_section_is_retitled_from_a_key_concept() -> None:
    state = _state()
    ctx = PipelineContext(hosted_settings(), EmbedOnly(), Decimal(1))  # type: ignore[arg-type]
    draft = _draft(
        [OutcomeDraft(text="Write for loops and while loops", bloom_level="apply")] * 3, [[1], [2]]
    )
    draft.sections[0].lessons[0].title = "Arithmetic operators"  # about neither section
    fixes = await _retitle_misplaced(state, draft, ctx)
    assert draft.sections[0].lessons[0].title == "Loops: for loops"
    assert draft.sections[1].lessons[0].title == "Storing data in dictionary keys and values"  # fits: kept
    assert len(fixes) == 1 and "is about no section" in fixes[0].reason
