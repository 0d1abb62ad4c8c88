"""Instrumentation without coupling: wrappers report frozen events to a `Hooks` callable.

A hook is any callable taking one event, so a plain function works. `RecordingHooks` keeps the
events; tests assert on them and the engine's report counts retries and fault classes from them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar

from ..errors import (
    BadResponse,
    CircuitOpen,
    ProviderConnectionError,
    ProviderError,
    ProviderHTTPError,
    ProviderTimeout,
    RateLimited,
)

__all__ = [
    "BreakerState",
    "BreakerTransition",
    "Hooks",
    "RateLimitWait",
    "RecordingHooks",
    "ResilienceEvent",
    "RetryScheduled",
    "fault_kind",
    "no_hooks",
]

BreakerState = Literal["closed", "open", "half_open"]


@dataclass(frozen=True, slots=True)
class RetryScheduled:
    """A call failed and will be sent again after `delay_s`."""

    model_id: str
    #: 1 for the first retry, 2 for the second, ...
    attempt: int
    delay_s: float
    #: `fault_kind` of the error that caused the retry.
    error_kind: str


@dataclass(frozen=True, slots=True)
class BreakerTransition:
    model_id: str
    old: BreakerState
    new: BreakerState


@dataclass(frozen=True, slots=True)
class RateLimitWait:
    """A call waited for rate-limit capacity before it was sent."""

    model_id: str
    waited_s: float


ResilienceEvent = RetryScheduled | BreakerTransition | RateLimitWait
E = TypeVar("E", RetryScheduled, BreakerTransition, RateLimitWait)


class Hooks(Protocol):
    def __call__(self, event: ResilienceEvent) -> None: ...


def no_hooks(event: ResilienceEvent) -> None:
    """The default hook: ignores every event."""


def fault_kind(error: BaseException) -> str:
    """A short, stable class name for an error, for reports and metrics labels."""
    if isinstance(error, RateLimited):
        return "rate_limited"
    if isinstance(error, ProviderHTTPError):
        return f"http_{error.status}"
    if isinstance(error, ProviderTimeout):
        return "timeout"
    if isinstance(error, ProviderConnectionError):
        return "connection"
    if isinstance(error, BadResponse):
        return f"bad_response_{error.kind}"
    if isinstance(error, CircuitOpen):
        return "circuit_open"
    if isinstance(error, ProviderError):
        return "provider"
    return type(error).__name__


class RecordingHooks:
    """Keeps every event in order."""

    def __init__(self) -> None:
        self.events: list[ResilienceEvent] = []

    def __call__(self, event: ResilienceEvent) -> None:
        self.events.append(event)

    def of_type(self, kind: type[E]) -> list[E]:
        return [e for e in self.events if isinstance(e, kind)]

    @property
    def retries(self) -> list[RetryScheduled]:
        return self.of_type(RetryScheduled)

    @property
    def transitions(self) -> list[BreakerTransition]:
        return self.of_type(BreakerTransition)

    @property
    def waits(self) -> list[RateLimitWait]:
        return self.of_type(RateLimitWait)

    def fault_counts(self) -> dict[str, int]:
        """Retries per fault class, e.g. {"rate_limited": 3, "http_503": 1}."""
        return dict(Counter(r.error_kind for r in self.retries))
