"""The course state that flows through the five phases, and the context they run in."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from ..config import PrioritySettings, Settings
from ..domain import AnalysisResult, CoursePlan, Decision, Exercise, LearningOutcome, ReviewFlag, SectionPlan
from ..domain.drafts import LessonDraft, MetadataCoreDraft, MetadataExtrasDraft
from ..providers import Embedder, Vector
from ..providers.effects import Effects
from ..quality.base import GateResult
from ..routing import Policy

__all__ = [
    "CourseState",
    "EffectsEmbedder",
    "LessonSlot",
    "PipelineContext",
    "PlanControl",
    "ProgressEvent",
    "SlotStatus",
    "track_progress",
]

SlotStatus = Literal["pending", "accepted", "flagged", "failed"]


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    phase: str
    #: "start" | "done" | "task_done" | "info"
    kind: str
    message: str = ""
    task: str = ""
    done: int = 0
    total: int = 0
    #: The course's spend and cap when the event was sent (None: not known to the sender).
    spent_usd: float | None = None
    budget_usd: float | None = None

    def as_data(self) -> dict[str, Any]:
        """The event as JSON data (the service's event stream, the workflow's `events` query)."""
        data: dict[str, Any] = {
            "phase": self.phase,
            "kind": self.kind,
            "message": self.message,
            "task": self.task,
            "done": self.done,
            "total": self.total,
        }
        if self.spent_usd is not None:
            data["spent_usd"], data["budget_usd"] = self.spent_usd, self.budget_usd
        return data


def track_progress(progress: dict[str, Any], event: ProgressEvent) -> None:
    """Move a job's progress, {"phases": {phase: {"state", "done", "total"}}, "message"}, on by
    `event`: in-process jobs and the Temporal workflow keep it alike."""
    phases = progress.setdefault("phases", {})
    phase = phases.setdefault(event.phase, {"state": "pending", "done": 0, "total": 0})
    if event.kind == "start":
        phase.update(state="running", done=0, total=event.total)
    elif event.kind == "task_done":
        phase.update(state="running", done=event.done, total=event.total)
    elif event.kind == "done":
        phase["state"] = "done"
        if phase["total"]:
            phase["done"] = phase["total"]
    if event.message:
        progress["message"] = f"{event.phase}: {event.message}"[:300]
    if event.spent_usd is not None:
        # Spent against budget while the job runs (the job page shows it).
        progress["spent_usd"], progress["budget_usd"] = event.spent_usd, event.budget_usd


class EffectsEmbedder(Embedder):
    """The pipeline's embeddings go through Effects like every other effect."""

    def __init__(self, effects: Effects, name: str) -> None:
        self._effects = effects
        self.name = name

    async def embed(self, texts: Sequence[str]) -> list[Vector]:
        return await self._effects.embed(texts)


@dataclass(frozen=True, slots=True)
class PlanControl:
    """What a job asks of the plan checkpoint after phase 2 (`pipeline/plan.py`): stop there
    for an author (`review`); once approved, the plan to go on with (`approved`: a `CoursePlan`,
    re-gated and applied after phase 2 is replayed)."""

    review: bool = False
    approved: CoursePlan | None = None
    #: Wait for the author inside the run instead of stopping it (the Temporal workflow: a
    #: signal brings the plan): given the plan record (`pipeline.plan.plan_record`, with
    #: `problems` when the last approved plan was refused), returns the plan to go on with.
    wait: Callable[[dict[str, Any]], Awaitable[CoursePlan]] | None = None


@dataclass(slots=True)
class PipelineContext:
    settings: Settings
    effects: Effects
    budget_usd: Decimal
    progress: Callable[[ProgressEvent], None] = lambda event: None
    plan: PlanControl | None = None
    #: A vetted question bank (`generate --question-bank`): reused before asking a model.
    bank: tuple[Exercise, ...] = ()
    _embedder: Embedder | None = field(default=None, repr=False)

    def embedder(self) -> Embedder:
        """The configured embedding model, reached through `effects` (one object per course)."""
        if self._embedder is None:
            self._embedder = EffectsEmbedder(self.effects, self.settings.gates.embedding_model)
        return self._embedder

    def priority_for(self, section_type: str, critical: bool) -> tuple[str, PrioritySettings]:
        routing = self.settings.routing
        name = "critical" if critical else "standard"
        type_settings = routing.section_types.get(section_type)
        if type_settings and not critical:
            name = type_settings.priority
        return name, routing.priorities.get(name, PrioritySettings())  # type: ignore[call-overload]

    def policy(
        self, priority: PrioritySettings, *, step_down_on_budget: bool = False
    ) -> Callable[[], Policy]:
        routing, budget = self.settings.routing, self.settings.budget

        def current() -> Policy:
            ceiling = None
            if budget.step_down_tier and self.effects.budget_fraction() >= budget.step_down_at:
                ceiling = budget.step_down_tier
            return Policy(
                ladder=tuple(routing.ladder),
                max_attempts=priority.max_attempts,
                escalate=priority.escalate,
                ceiling=ceiling,
                severe_to_top=routing.severe_to_top,
                step_down_on_budget=step_down_on_budget,
            )

        return current


@dataclass(slots=True)
class LessonSlot:
    """One lesson the course needs, and what generating it has produced so far."""

    id: str
    section_index: int
    title: str
    outcome_numbers: list[int]
    status: SlotStatus = "pending"
    draft: LessonDraft | None = None
    gates: list[GateResult] = field(default_factory=list)
    #: The tier its first generation started on (escalation is measured from it).
    start_tier: str = ""
    #: The tier its latest generation started on.
    round_start_tier: str = ""
    #: The lowest tier its next generation may start on: a failed lesson is regenerated a tier
    #: above where it failed, never by repeating the calls that failed (limited escalation).
    floor_tier: str = ""
    #: Why it has a floor tier, when not a failed generation (a reviewer's "best quality").
    floor_reason: str = ""
    tier: str = ""
    model: str = ""
    attempts: int = 0
    #: How many times this slot was sent back (duplicate, failed, incomplete).
    rounds: int = 0
    #: Extra instruction for the next generation (e.g. "too close to lesson S1-L2").
    feedback: str = ""
    reason: str = ""
    #: Its last run failed for a reason another run may not meet (a timeout, a dropped
    #: connection, a rate limit, an exception): worth the sequential fallback.
    transient_failure: bool = False
    #: The source excerpts this lesson is shown and graded against (`context.lesson_excerpts`):
    #: (source id, title, excerpt); None until computed.
    excerpts: list[tuple[str, str, str]] | None = None
    #: Names a generation outside the phases (a reviewer's request), so its calls get their own
    #: step keys: "lesson:S1-L2/<tag>".
    task_tag: str = ""


@dataclass(slots=True)
class CourseState:
    analysis: AnalysisResult
    course_id: str
    #: Lessons planned per input section (raised so the total reaches min_lessons).
    lesson_counts: list[int]
    core: MetadataCoreDraft | None = None
    extras: MetadataExtrasDraft | None = None
    outcomes: list[LearningOutcome] = field(default_factory=list)
    plans: list[SectionPlan] = field(default_factory=list)
    slots: dict[str, LessonSlot] = field(default_factory=dict)
    flags: list[ReviewFlag] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    #: The metadata quality gate's verdicts on the accepted (or last) metadata (phase 2).
    metadata_gates: list[GateResult] = field(default_factory=list)
    #: Every source sentence (position, source id, text) and its vector, for excerpt retrieval.
    source_units: tuple[list[tuple[int, str, str]], list[list[float]]] | None = None
    #: Set when the course cannot be completed.
    failure: str = ""
    #: Set when the run stopped at the plan checkpoint: the plan record for the author
    #: (`pipeline.plan.plan_record`).
    plan_stop: dict[str, Any] | None = None
    #: Lesson id -> the bank questions it reuses (`pipeline/bank.py`).
    bank: dict[str, list[Exercise]] = field(default_factory=dict)
    #: Work that runs beside the phases (calibration judging); awaited before assembly.
    background: list[asyncio.Future[None]] = field(default_factory=list)

    def outcome_id(self, number: int) -> str:
        return self.outcomes[number - 1].id

    def slots_in(self, section_index: int) -> list[LessonSlot]:
        return [s for s in self.slots.values() if s.section_index == section_index]

    def usable_slots(self) -> list[LessonSlot]:
        return [s for s in self.slots.values() if s.status in ("accepted", "flagged") and s.draft]
