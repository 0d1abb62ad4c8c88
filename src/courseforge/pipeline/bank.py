"""A vetted question bank in phase 3 (`generate --question-bank`): each bank question placed, by
meaning (the embedder), in the lesson it is closest to and mapped to that lesson's closest
outcome (`assign_bank`), at most `gates.max_exercises - 1` per lesson (the model still writes
one exercise at least), each question used once. A lesson with k bank questions asks its model for k fewer exercises; the
questions are added to the lesson as they are, with their source id (`assemble.lesson_of`).

The report's `bank_reused`, `bank_generated` and `bank_saved_estimate_usd` (an estimate: the output
tokens of the exercises not asked for, `TOKENS_PER_EXERCISE` each, at the output price of the
model that wrote the lesson) are defined in `bank_figures` (docs/authoring.md).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from ..domain import Exercise
from ..providers.embeddings import cosine
from ..quality.gates import thresholds_for
from .metadata import section_text
from .state import CourseState, PipelineContext

__all__ = ["TOKENS_PER_EXERCISE", "assign_bank", "bank_figures", "bank_room"]

#: Output tokens of one exercise a model writes (question, options, answer, explanation).
TOKENS_PER_EXERCISE = 90


def bank_room(ctx: PipelineContext) -> int:
    """How many bank questions a lesson may take: all but one of its exercises."""
    return max(0, ctx.settings.gates.max_exercises - 1)


async def assign_bank(state: CourseState, ctx: PipelineContext) -> None:
    """Fill `state.bank` (lesson id -> its bank questions) from `ctx.bank`, after phase 2.

    A question (its text and answer) goes to the lesson it is closest to by meaning (the lesson
    as its title, its section's title and key concepts), when that cosine is at least the
    embedder's `severe_below` for the similarity gate (below it, the question is about something
    else); it assesses the lesson's outcome closest to it. A lesson takes its closest questions,
    at most `bank_room`."""
    if not ctx.bank or not state.outcomes or not state.slots:
        return
    questions, slots = list(ctx.bank), list(state.slots.values())
    lesson_texts = [f"{s.title}. {section_text(state.analysis.sections[s.section_index])}" for s in slots]
    texts = [f"{q.question} {q.answer}" for q in questions] + lesson_texts + [o.text for o in state.outcomes]
    vectors = await ctx.effects.embed(texts)
    q_vecs = vectors[: len(questions)]
    l_vecs = vectors[len(questions) : len(questions) + len(slots)]
    o_vecs = vectors[len(questions) + len(slots) :]
    floor = thresholds_for(ctx.settings.gates, ctx.settings.gates.embedding_model).severe_below
    placed: dict[int, list[tuple[float, int]]] = {}
    for qi, vec in enumerate(q_vecs):
        scores = [cosine(vec, lv) for lv in l_vecs]
        best = max(range(len(slots)), key=scores.__getitem__)
        if scores[best] >= floor:
            placed.setdefault(best, []).append((scores[best], qi))
    room = bank_room(ctx)
    for si, pool in placed.items():
        slot = slots[si]
        taken: list[Exercise] = []
        ids = {f"{slot.id}-E{k + 1}" for k in range(ctx.settings.gates.max_exercises)}  # the model's
        for _, qi in sorted(pool, reverse=True):
            if len(taken) == room:
                break
            if questions[qi].id in ids:  # an exercise id appears once in a lesson
                continue
            ids.add(questions[qi].id)
            number = max(slot.outcome_numbers, key=lambda n: cosine(q_vecs[qi], o_vecs[n - 1]))
            taken.append(questions[qi].model_copy(update={"outcome_ids": [state.outcome_id(number)]}))
        state.bank[slot.id] = taken


def bank_figures(state: CourseState, ctx_settings: Any) -> dict[str, Any]:
    """Reused vs generated exercises of the course's lessons and the money not spent."""
    if not state.bank:
        return {}
    reused = generated = 0
    saved = Decimal(0)
    for slot in state.usable_slots():
        k = len(state.bank.get(slot.id, ()))
        reused += k
        generated += len(slot.draft.exercises) if slot.draft else 0
        model = ctx_settings.models.get(slot.model)
        if k and model is not None:
            saved += (
                Decimal(k * TOKENS_PER_EXERCISE) * Decimal(str(model.price_out_per_m)) / Decimal(1_000_000)
            )
    return {
        "bank_reused": reused,
        "bank_generated": generated,
        "bank_saved_estimate_usd": float(round(saved, 6)),
    }
