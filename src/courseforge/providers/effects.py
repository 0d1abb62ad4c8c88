"""The one door through which the pipeline touches the world.

Model calls, embeddings, the clock and CPU-bound work reach the pipeline only through
`Effects`, so the same pipeline runs in-process and inside a Temporal workflow (each call an
activity) without a second copy; `engine.calls.CourseCalls` is the implementation both use.
Every call carries its task identity (`domain.tasks.TaskId`), from which the deterministic step
key is derived: the identity under which a finished call is stored and replayed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from ..domain import CallRecord
from ..domain.tasks import TaskId, step_key
from .base import ChatRequest, ChatResponse, Vector

__all__ = ["CallResult", "CallSpec", "Effects"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class CallSpec:
    phase: str
    task: TaskId
    tier: str
    attempt: int
    request: ChatRequest
    #: The phase's round (phase 5 runs up to `routing.completeness_rounds` rounds; 0 elsewhere).
    round: int = 0

    @property
    def step_key(self) -> str:
        return step_key(self.phase, self.task, self.attempt, self.tier)


@dataclass(slots=True)
class CallResult:
    response: ChatResponse
    #: The ledger's record of this call; the caller marks it rejected if a gate refuses it.
    record: CallRecord

    def reject(self, reason: str) -> None:
        self.record.outcome = "rejected"
        self.record.reason = reason[:500]


class Effects(Protocol):
    async def call(self, spec: CallSpec) -> CallResult:
        """Send one request on the tier's model, with budget reservation and a call record.
        Raises ProviderError subclasses or BudgetExceeded."""
        ...

    async def embed(self, texts: Sequence[str]) -> list[Vector]: ...

    def now_ms(self) -> float: ...

    def budget_fraction(self) -> float:
        """Share of the course's cap spent or reserved (0..1)."""
        ...

    async def run_blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """Run CPU-bound work (a gate loading a classifier) off the event loop where the runtime
        has threads, or inline where it must stay on one deterministic loop (a workflow)."""
        ...
