"""Instrumentation without coupling: wrappers report frozen events to a `Hooks` callable.

A hook is any callable taking one event, so a plain function works. `RecordingHooks` keeps the
events; tests assert on them and the engine's report counts retries and fault classes from them.
`CountingHooks` only counts them (an engine's whole life: bounded memory).
`ScopedHooks` forwards each event to the recorder of the current scope (a context variable),
so an engine running many courses at once counts each course's events apart; `log_event`
writes events to the `courseforge.resilience` logger.
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar

from ..domain import CallRecord
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
    "CallRecorded",
    "CountingHooks",
    "EventCounts",
    "FallbackTaken",
    "FaultObserved",
    "Hooks",
    "OutputModeChanged",
    "RateLimitWait",
    "RecordingHooks",
    "ResilienceEvent",
    "RetryScheduled",
    "ScopedHooks",
    "current_scope",
    "fan_out",
    "fault_kind",
    "log_event",
    "no_hooks",
]

_log = logging.getLogger("courseforge.resilience")

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


@dataclass(frozen=True, slots=True)
class FaultObserved:
    """A call to `model_id` failed with fault class `kind` (`fault_kind`), retried or not."""

    model_id: str
    kind: str


@dataclass(frozen=True, slots=True)
class FallbackTaken:
    """`model_id` failed (`kind`) for a request; its fallback chain moves on to `to_model`."""

    model_id: str
    to_model: str
    kind: str


@dataclass(frozen=True, slots=True)
class OutputModeChanged:
    """`model_id` proved it cannot do structured mode `old`; from now on it gets `new`."""

    model_id: str
    old: str
    new: str
    reason: str


@dataclass(frozen=True, slots=True)
class CallRecorded:
    """A course's call was put on its ledger (answered, rejected, failed, blocked by the budget,
    skipped by an open breaker, or replayed): per-call metrics count it as it happens. A gate
    may still turn an answered call's record `rejected` afterwards."""

    record: CallRecord


ResilienceEvent = (
    RetryScheduled
    | BreakerTransition
    | RateLimitWait
    | FaultObserved
    | FallbackTaken
    | OutputModeChanged
    | CallRecorded
)
E = TypeVar(
    "E",
    RetryScheduled,
    BreakerTransition,
    RateLimitWait,
    FaultObserved,
    FallbackTaken,
    OutputModeChanged,
    CallRecorded,
)


class Hooks(Protocol):
    def __call__(self, event: ResilienceEvent) -> None: ...


class EventCounts(Protocol):
    """What a course's report counts of the resilience events its calls met."""

    def retry_count(self) -> int: ...

    def fault_counts(self) -> dict[str, int]: ...


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


_serials = itertools.count(1)


class RecordingHooks:
    """Keeps every event in order."""

    def __init__(self) -> None:
        self.events: list[ResilienceEvent] = []
        #: Unique in the process: names the scope (the course) this recorder records.
        self.serial = next(_serials)
        #: (retries, fault counts) kept by `seal`, which drops the events.
        self._sealed: tuple[int, dict[str, int]] | None = None

    def __call__(self, event: ResilienceEvent) -> None:
        if self._sealed is None:
            self.events.append(event)

    def seal(self) -> None:
        """Keep what a report counts (`retry_count`, `fault_counts`) and drop the events; later
        events are ignored. A scope's recorder outlives its scope wherever a copy of the scope's
        context does, and a provider connection opened during a course keeps one for as long as
        it stays in the pool: with the events, that kept every call record of the course that
        opened it (benchmarks/scale.py: 627 -> 1,341 `CallRecord`s with no course in flight)."""
        if self._sealed is None:
            self._sealed = (self.retry_count(), self.fault_counts())
            self.events = []

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

    @property
    def faults(self) -> list[FaultObserved]:
        return self.of_type(FaultObserved)

    def fault_counts(self) -> dict[str, int]:
        """Faults seen per class, retried or not, e.g. {"rate_limited": 3, "http_503": 1}."""
        if self._sealed is not None:
            return dict(self._sealed[1])
        return dict(sorted(Counter(f.kind for f in self.faults).items()))

    def retry_count(self) -> int:
        """Transport retries scheduled."""
        if self._sealed is not None:
            return self._sealed[0]
        return len(self.retries)


class CountingHooks:
    """Counts events without keeping them: what a long-lived engine (a service running
    thousands of courses) can afford for "every event of its life". A `RecordingHooks` there
    grew by every retry, fault and fallback until the process ended (benchmarks/scale.py:
    +1,341 `FaultObserved` and +553 `RetryScheduled` kept between the 200th and the 1,800th
    course); each course still records its own events in its scope."""

    def __init__(self) -> None:
        #: Events seen, by type name ("RetryScheduled": 3, ...).
        self.counts: Counter[str] = Counter()
        self._faults: Counter[str] = Counter()

    def __call__(self, event: ResilienceEvent) -> None:
        self.counts[type(event).__name__] += 1
        if isinstance(event, FaultObserved):
            self._faults[event.kind] += 1

    def fault_counts(self) -> dict[str, int]:
        """Faults seen per class, retried or not, e.g. {"rate_limited": 3, "http_503": 1}."""
        return dict(sorted(self._faults.items()))

    def retry_count(self) -> int:
        """Transport retries scheduled."""
        return self.counts[RetryScheduled.__name__]


def current_scope() -> RecordingHooks | None:
    """The recorder of the scope the current task runs in (one per course), or None."""
    return _scope.get()


def fan_out(*hooks: Hooks) -> Hooks:
    """One hook that calls each of `hooks` in order."""

    def call(event: ResilienceEvent) -> None:
        for hook in hooks:
            hook(event)

    return call


_scope: contextvars.ContextVar[RecordingHooks | None] = contextvars.ContextVar(
    "courseforge_hooks_scope", default=None
)


class ScopedHooks:
    """Forwards every event to the `RecordingHooks` of the current scope, if any.

    `with hooks.scope() as recorded:` opens a scope for the current task and every task it
    starts (context variables are copied into child tasks), so concurrent courses, each in its
    own task, record their own events from wrappers they share. When the scope ends, the
    recorder keeps only its counts (`RecordingHooks.seal`).
    """

    def __call__(self, event: ResilienceEvent) -> None:
        recorder = _scope.get()
        if recorder is not None:
            recorder(event)

    @contextlib.contextmanager
    def scope(self) -> Iterator[RecordingHooks]:
        recorder = RecordingHooks()
        token = _scope.set(recorder)
        try:
            yield recorder
        finally:
            _scope.reset(token)
            recorder.seal()


def log_event(event: ResilienceEvent) -> None:
    """Write an event to the `courseforge.resilience` logger (breaker changes at WARNING)."""
    if isinstance(event, BreakerTransition):
        _log.warning("breaker %s: %s -> %s", event.model_id, event.old, event.new)
    elif isinstance(event, OutputModeChanged):
        _log.warning("output mode %s: %s -> %s (%s)", event.model_id, event.old, event.new, event.reason)
    elif isinstance(event, FallbackTaken):
        _log.info("fallback %s -> %s after %s", event.model_id, event.to_model, event.kind)
    elif isinstance(event, RetryScheduled):
        _log.info(
            "retry %s #%d in %.2fs after %s", event.model_id, event.attempt, event.delay_s, event.error_kind
        )
    elif _log.isEnabledFor(logging.DEBUG):
        _log.debug("%s", event)
