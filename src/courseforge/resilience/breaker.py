"""Circuit breakers: stop calling a model that is down, probe it again after a cooldown.

    closed ──N consecutive outage failures──▶ open ──cooldown──▶ half_open
      ▲                                        ▲                    │ one probe at a time
      └──────────── probe succeeds ────────────┼────────────────────┤
                                               └── probe fails ─────┘

What counts as a failure (`counts_as_outage`): every `ProviderError` (HTTP errors, 429s,
timeouts, lost connections, empty or unparseable 2xx bodies, which a degraded provider sends)
except content problems — `BadResponse` of kind "schema" or "truncated" — and `CircuitOpen`.
A schema-invalid or truncated answer proves the provider is up; the model merely wrote badly,
which the cascade handles. Such answers count as successes: they reset the failure streak and a
probe that gets one closes the breaker. Errors that are not provider errors (our bugs,
cancellation) count as neither and only free the probe slot.

Each call gets a `Permit`; outcomes of permits issued before the breaker last opened are
ignored, so stragglers that were in flight when it opened cannot re-open or close it later.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import BadResponse, CircuitOpen, ProviderError
from ..providers.base import ChatModel, ChatRequest, ChatResponse
from ._constants import BREAKER_COOLDOWN_S, BREAKER_FAILURE_THRESHOLD
from ._wrapper import WrapperModel
from .clock import Clock, SystemClock
from .hooks import BreakerState, BreakerTransition, Hooks, no_hooks

__all__ = [
    "BreakerRegistry",
    "BreakerSnapshot",
    "BreakerState",
    "BreakingModel",
    "CircuitBreaker",
    "Permit",
    "counts_as_outage",
]

#: BadResponse kinds that mean "the model answered badly", not "the provider is down".
CONTENT_KINDS = frozenset({"schema", "truncated"})


def counts_as_outage(error: BaseException) -> bool:
    """Does this error count towards opening the breaker? See the module docstring."""
    if not isinstance(error, ProviderError) or isinstance(error, CircuitOpen):
        return False
    return not (isinstance(error, BadResponse) and error.kind in CONTENT_KINDS)


@dataclass(frozen=True, slots=True)
class BreakerSnapshot:
    """A breaker's state at one moment, for reports and metrics."""

    state: BreakerState
    consecutive_failures: int
    #: Monotonic-clock time it last opened, or None if it never did.
    opened_at: float | None
    #: Seconds until a probe may go through (0 unless open).
    reopens_in_s: float
    #: Times it has opened since it was created.
    opens: int = 0


@dataclass(frozen=True, slots=True)
class Permit:
    """Leave to make one call; hand it back with the outcome."""

    generation: int
    probe: bool


class CircuitBreaker:
    """The state machine alone, with an injected clock; `BreakingModel` puts it around a model."""

    def __init__(
        self,
        *,
        model_id: str = "",
        failure_threshold: int = BREAKER_FAILURE_THRESHOLD,
        cooldown_s: float = BREAKER_COOLDOWN_S,
        clock: Clock | None = None,
        hooks: Hooks = no_hooks,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be >= 1")
        if cooldown_s < 0:
            raise ValueError("cooldown_s must be >= 0")
        self.model_id = model_id
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self._clock: Clock = clock or SystemClock()
        self._hooks = hooks
        self._state: BreakerState = "closed"
        self._failures = 0
        self._opened_at: float | None = None
        # Bumped each time the breaker opens; permits from older generations are stale.
        self._generation = 0
        self._probe_in_flight = False
        self._opens = 0

    @property
    def state(self) -> BreakerState:
        self._tick()
        return self._state

    @property
    def reopens_in_s(self) -> float:
        self._tick()
        if self._state != "open" or self._opened_at is None:
            return 0.0
        return max(0.0, self._opened_at + self.cooldown_s - self._clock.monotonic())

    def snapshot(self) -> BreakerSnapshot:
        reopens_in_s = self.reopens_in_s
        return BreakerSnapshot(self._state, self._failures, self._opened_at, reopens_in_s, self._opens)

    def allow(self) -> Permit | None:
        """A permit to call, or None while open or while a half-open probe is in flight."""
        self._tick()
        if self._state == "closed":
            return Permit(self._generation, probe=False)
        if self._state == "half_open" and not self._probe_in_flight:
            self._probe_in_flight = True
            return Permit(self._generation, probe=True)
        return None

    def record_success(self, permit: Permit) -> None:
        if not self._is_current(permit):
            return
        self._failures = 0
        if permit.probe:
            self._probe_in_flight = False
            self._move_to("closed")

    def record_failure(self, permit: Permit) -> None:
        if not self._is_current(permit):
            return
        self._failures += 1
        if permit.probe:
            self._probe_in_flight = False
            self._open()
        elif self._failures >= self.failure_threshold:
            self._open()

    def release(self, permit: Permit) -> None:
        """The call ended with no verdict on the provider (cancelled, or a bug of ours)."""
        if permit.probe and self._is_current(permit):
            self._probe_in_flight = False

    def _is_current(self, permit: Permit) -> bool:
        # No permit is issued while open, and opening bumps the generation, so a current permit
        # is either a closed-state call or the half-open probe.
        return permit.generation == self._generation

    def _tick(self) -> None:
        if (
            self._state == "open"
            and self._opened_at is not None
            and self._clock.monotonic() - self._opened_at >= self.cooldown_s
        ):
            self._move_to("half_open")

    def _open(self) -> None:
        self._opens += 1
        self._generation += 1
        self._opened_at = self._clock.monotonic()
        self._probe_in_flight = False
        self._move_to("open")

    def _move_to(self, new: BreakerState) -> None:
        old, self._state = self._state, new
        if old != new:
            self._hooks(BreakerTransition(self.model_id, old, new))


class BreakingModel(WrapperModel):
    """Raises `CircuitOpen` without calling the inner model while its breaker refuses calls."""

    def __init__(self, inner: ChatModel, breaker: CircuitBreaker) -> None:
        super().__init__(inner)
        self.breaker = breaker

    async def complete(self, request: ChatRequest) -> ChatResponse:
        permit = self.breaker.allow()
        if permit is None:
            raise CircuitOpen(model=self.model_id, reopens_in_s=self.breaker.reopens_in_s)
        try:
            response = await self.inner.complete(request)
        except BaseException as error:
            if counts_as_outage(error):
                self.breaker.record_failure(permit)
            elif isinstance(error, ProviderError) and not isinstance(error, CircuitOpen):
                self.breaker.record_success(permit)  # the provider answered, if badly
            else:
                self.breaker.release(permit)
            raise
        self.breaker.record_success(permit)
        return response


class BreakerRegistry:
    """One breaker per model id, shared by every course the engine runs."""

    def __init__(
        self,
        *,
        failure_threshold: int = BREAKER_FAILURE_THRESHOLD,
        cooldown_s: float = BREAKER_COOLDOWN_S,
        clock: Clock | None = None,
        hooks: Hooks = no_hooks,
    ) -> None:
        self._failure_threshold = failure_threshold
        self._cooldown_s = cooldown_s
        self._clock: Clock = clock or SystemClock()
        self._hooks = hooks
        self._breakers: dict[str, CircuitBreaker] = {}

    def breaker(self, model_id: str) -> CircuitBreaker:
        """The model's breaker, created closed on first use."""
        found = self._breakers.get(model_id)
        if found is None:
            found = CircuitBreaker(
                model_id=model_id,
                failure_threshold=self._failure_threshold,
                cooldown_s=self._cooldown_s,
                clock=self._clock,
                hooks=self._hooks,
            )
            self._breakers[model_id] = found
        return found

    def wrap(self, inner: ChatModel) -> BreakingModel:
        return BreakingModel(inner, self.breaker(inner.model_id))

    def snapshots(self) -> dict[str, BreakerSnapshot]:
        return {model_id: b.snapshot() for model_id, b in sorted(self._breakers.items())}
