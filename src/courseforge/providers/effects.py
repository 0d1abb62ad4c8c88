"""The one door through which the pipeline touches the world.

Model calls, embeddings and the clock reach the pipeline only through `Effects`, so the same
pipeline runs in-process (the engine's implementation reserves budget, records, checkpoints)
and on a distributed engine (each call an activity) without a second copy. Every call carries
a deterministic `step_key`, the identity under which a finished call is stored and replayed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from ..domain import CallRecord
from .base import ChatRequest, ChatResponse

__all__ = ["CallResult", "CallSpec", "Effects", "run_blocking"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class CallSpec:
    phase: str
    task: str
    tier: str
    attempt: int
    request: ChatRequest

    @property
    def step_key(self) -> str:
        return f"{self.phase}/{self.task}/{self.attempt}/{self.tier}"


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

    async def embed(self, texts: Sequence[str]) -> list[list[float]]: ...

    def now_ms(self) -> float: ...

    def budget_fraction(self) -> float:
        """Share of the course's cap spent or reserved (0..1)."""
        ...


async def run_blocking(effects: object, fn: Callable[..., T], *args: Any) -> T:
    """Run CPU-bound pipeline work (a gate loading a classifier) off the event loop where the
    runtime has threads (in-process: `asyncio.to_thread`), or inline where it must stay on one
    deterministic loop — a Temporal workflow, whose effects set `inline_blocking = True` (its
    loop has no executor; the worker warms such gates up before taking work)."""
    if getattr(effects, "inline_blocking", False):
        return fn(*args)
    return await asyncio.to_thread(fn, *args)
