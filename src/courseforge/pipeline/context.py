"""What a call is shown, and where a call too large for its model goes.

- `lesson_excerpts`: the source passages relevant to one lesson (a lesson is grounded in what
  the model saw): the sources' sentences ranked by cosine to the lesson's title, outcomes and key
  concepts, taken best first up to `gates.grounding.excerpt_tokens`, put back in source order.
  The lesson prompt shows exactly these and the grounding gate and the judge grade against them.
- `fit_context`: the long-context tier for every call alike (metadata, lesson, judge): a request whose
  counted tokens (prompt + room for the answer) reach `routing.long_context_at_tokens`, or the
  chosen model's context window less `routing.context_margin`, goes to the long-context tier,
  with a `long_context` decision saying how many tokens, counted how, against what threshold.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from ..config import Settings
from ..domain import AnalysisResult, Decision
from ..ledger.tokens import count_text_tokens, counted_by
from ..providers import Message
from ..providers.embeddings import cosine
from ..quality.safety import sentences
from .state import CourseState, LessonSlot, PipelineContext

__all__ = [
    "Excerpt",
    "excerpt_bounds",
    "fit_context",
    "lesson_excerpts",
    "lesson_query",
    "request_tokens",
    "select_excerpts",
    "source_index",
]

#: (source id, source title, the excerpt shown).
Excerpt = tuple[str, str, str]
_MESSAGE_OVERHEAD = 4


def request_tokens(messages: Sequence[Message], max_tokens: int, model: str | None = None) -> int:
    """Counted tokens of a request for `model` (its provider name; `ledger.tokens`: the family's
    tokenizer when one is installed, else the estimate): its messages plus the answer's room."""
    return sum(count_text_tokens(m.content, model) + _MESSAGE_OVERHEAD for m in messages) + max_tokens


def fit_context(
    ctx: PipelineContext, tier: str, messages: Sequence[Message], max_tokens: int, task: str
) -> tuple[str, Decision | None]:
    """`tier`, or the long-context tier when the request does not fit (see the module doc)."""
    routing, models = ctx.settings.routing, ctx.settings.models
    model = models[routing.tiers[tier]]
    tokens = request_tokens(messages, max_tokens, model.name)
    counted = counted_by(model.name)
    window = model.context_window
    limit = min(routing.long_context_at_tokens, int(window * (1 - routing.context_margin)))
    if tokens < limit:
        return tier, None
    long_tier = routing.long_context_tier
    if not long_tier or long_tier not in routing.tiers or long_tier == tier:
        return tier, None
    long_window = models[routing.tiers[long_tier]].context_window
    if tokens >= long_window:
        return tier, Decision(
            task=task,
            action="long_context",
            tier=tier,
            reason=f"{tokens} tokens ({counted}) exceed even the long-context window {long_window}: kept on {tier}",
            inputs={"tokens": tokens, "threshold": limit, "from_tier": tier},
        )
    return long_tier, Decision(
        task=task,
        action="long_context",
        tier=long_tier,
        reason=f"{tokens} tokens ({counted}) >= {limit} (min of long_context_at_tokens "
        f"{routing.long_context_at_tokens} and {tier}'s window {window} less {routing.context_margin:.0%}): "
        f"routed to {long_tier} ({long_window})",
        inputs={"tokens": tokens, "threshold": limit, "from_tier": tier, "window": window},
    )


Embed = Callable[[Sequence[str]], Awaitable[Sequence[Sequence[float]]]]
#: Every source sentence (position, source id, text) and its vector.
SourceIndex = tuple[list[tuple[int, str, str]], list[list[float]]]


async def source_index(analysis: AnalysisResult, embed: Embed) -> SourceIndex:
    units = [(i, m.id, s) for m in analysis.source_material for i, s in enumerate(sentences(m.text))]
    vectors = [list(v) for v in await embed([u[2] for u in units])] if units else []
    return units, vectors


def excerpt_bounds(settings: Settings) -> tuple[int, float]:
    """(token budget, least relevance) of a lesson's excerpts: `gates.grounding.excerpt_tokens`
    and the grounding `unsupported` cosine of the embedding model (below it a sentence is no
    support for anything, so it is not shown either)."""
    g = settings.gates.grounding
    return g.excerpt_tokens, g.unsupported.get(settings.gates.embedding_model, 0.0)


def lesson_query(analysis: AnalysisResult, section_index: int, title: str, outcomes: Sequence[str]) -> str:
    """What a lesson's excerpts are retrieved by: its title, outcomes and section key concepts."""
    return " ".join([title, *outcomes, *analysis.sections[section_index].key_concepts])


async def select_excerpts(
    analysis: AnalysisResult, index: SourceIndex, embed: Embed, query: str, budget: int, min_cosine: float
) -> list[Excerpt]:
    """The sentences closest to `query` by cosine, best first up to `budget` tokens, those under
    `min_cosine` left out (the best one is always shown), grouped by source and put back in
    source order. Deterministic: `check` retrieves the same ones."""
    units, vectors = index
    if not units:
        return []
    [qv] = await embed([query])
    score = {k: cosine(qv, vectors[k]) for k in range(len(units))}
    ranked = sorted(range(len(units)), key=lambda k: (-score[k], k))
    chosen: list[int] = []
    used = 0
    for k in ranked:
        if chosen and score[k] < min_cosine:
            break
        cost = count_text_tokens(units[k][2]) + 1
        if used + cost > budget:
            if chosen:
                break
            continue
        chosen.append(k)
        used += cost
    titles = {m.id: m.title for m in analysis.source_material}
    by_source: dict[str, list[tuple[int, str]]] = {}
    for k in chosen:
        position, sid, text = units[k]
        by_source.setdefault(sid, []).append((position, text))
    order = [m.id for m in analysis.source_material if m.id in by_source]
    return [(sid, titles[sid], " ".join(t for _, t in sorted(by_source[sid]))) for sid in order]


async def lesson_excerpts(state: CourseState, slot: LessonSlot, ctx: PipelineContext) -> list[Excerpt]:
    """The excerpts lesson `slot` is shown (and graded against), computed once per slot."""
    if slot.excerpts is not None:
        return slot.excerpts
    analysis = state.analysis
    if not analysis.source_material:
        slot.excerpts = []
        return slot.excerpts
    if state.source_units is None:
        state.source_units = await source_index(analysis, ctx.effects.embed)
    query = lesson_query(
        analysis, slot.section_index, slot.title, [state.outcomes[n - 1].text for n in slot.outcome_numbers]
    )
    slot.excerpts = await select_excerpts(
        analysis, state.source_units, ctx.effects.embed, query, *excerpt_bounds(ctx.settings)
    )
    return slot.excerpts
