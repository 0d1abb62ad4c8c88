"""Circuit breakers that tell a provider that is down from one that is flaky.

    closed ──trip──▶ open ──cooldown──▶ half_open ── a probe answers ──▶ closed
      ▲                ▲                   │ up to `half_open_probes` calls at once
      │                └── a probe fails ──┘ (the cooldown grows if flaky)
      └───────────────────────────────────────────────────────────────────┘

Each breaker keeps the last outcomes (`window_calls`, no older than `window_s`) besides the
streak of consecutive failures. It trips on `failure_threshold` consecutive failures (a
model's breaker) or, for a provider's breaker, only when the window says "down". What the
window's failure rate says decides the cooldown:

- **down** (rate >= `down_rate`, 90 %, over at least `min_calls`, 10, outcomes, calls in flight
  counted as not failed): 3 consecutive failures -> the full `cooldown_s` (60 s); every
  call is skipped until a probe answers. Three failures alone do not prove a provider down (at
  30 % random 5xx they happen about once in 37 calls); ten outcomes, about three calls with
  their retries, mostly do.
- **flaky** (rate below that: the model still answers most calls): a short first cooldown
  (`flaky_cooldown_s`, 1 s) that doubles each time the breaker re-opens without having closed,
  up to `cooldown_s`. A caller with nowhere else to go may force a call through a flaky open
  breaker (`allow(force=True)`, see `engine/calls.py`); never through a down one.

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

from collections import deque
from dataclasses import dataclass, replace
from typing import Literal

from ..config import BreakerSettings
from ..errors import BadResponse, CircuitOpen, ProviderError, ProviderHTTPError
from ..providers.base import ChatModel, ChatRequest, ChatResponse
from ._constants import (
    BREAKER_COOLDOWN_S,
    BREAKER_DOWN_MIN_CALLS,
    BREAKER_DOWN_RATE,
    BREAKER_FAILURE_THRESHOLD,
    BREAKER_FLAKY_COOLDOWN_S,
    BREAKER_HALF_OPEN_PROBES,
    BREAKER_WINDOW_CALLS,
    BREAKER_WINDOW_S,
    PROVIDER_BREAKER_MIN_CALLS,
)
from ._wrapper import WrapperModel
from .clock import Clock, SystemClock
from .hooks import BreakerState, BreakerTransition, Hooks, no_hooks

__all__ = [
    "FORCE_TAG",
    "BreakerPolicy",
    "BreakerRegistry",
    "BreakerSnapshot",
    "BreakerState",
    "BreakingModel",
    "CircuitBreaker",
    "Health",
    "Permit",
    "counts_as_outage",
]

#: BadResponse kinds that mean "the model answered badly", not "the provider is down".
CONTENT_KINDS = frozenset({"schema", "truncated"})
#: HTTP statuses that judge the request or the account, not the provider: 400 (invalid), 401
#: (key refused), 402 (no credits), 403 (input flagged by moderation).
REQUEST_STATUSES = frozenset({400, 401, 402, 403})
#: Request tag asking `BreakingModel` to force the call through a flaky open breaker.
FORCE_TAG = "breaker_force"

Health = Literal["", "flaky", "down"]


def counts_as_outage(error: BaseException) -> bool:
    """Does this error count towards opening the breaker? See the module docstring."""
    if not isinstance(error, ProviderError) or isinstance(error, CircuitOpen):
        return False
    if isinstance(error, ProviderHTTPError) and error.status in REQUEST_STATUSES:
        return False  # about this request (or the account), not the model's health
    return not (isinstance(error, BadResponse) and error.kind in CONTENT_KINDS)


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """How a breaker judges; the defaults are a model's breaker (`provider()` a provider's)."""

    failure_threshold: int = BREAKER_FAILURE_THRESHOLD
    #: The down cooldown (60 s), and the ceiling of a flaky one.
    cooldown_s: float = BREAKER_COOLDOWN_S
    flaky_cooldown_s: float = BREAKER_FLAKY_COOLDOWN_S
    #: Factor a flaky cooldown grows by at each re-opening without a close in between.
    growth: float = 2.0
    window_calls: int = BREAKER_WINDOW_CALLS
    window_s: float = BREAKER_WINDOW_S
    down_rate: float = BREAKER_DOWN_RATE
    #: Outcomes the window needs before its rate can say "down" (0: the streak's length).
    min_calls: int = BREAKER_DOWN_MIN_CALLS
    half_open_probes: int = BREAKER_HALF_OPEN_PROBES
    #: Trip on the streak (a model), or only when the window says down (a provider: many models
    #: share it, and a streak across them says less than their combined rate).
    trip_on_streak: bool = True

    def __post_init__(self) -> None:
        if self.failure_threshold < 1:
            raise ValueError("failure_threshold must be >= 1")
        if self.cooldown_s < 0 or self.flaky_cooldown_s < 0:
            raise ValueError("cooldown_s must be >= 0")
        if self.growth < 1 or self.window_calls < 1 or self.half_open_probes < 1 or self.min_calls < 0:
            raise ValueError("growth, window_calls and half_open_probes must be >= 1, min_calls >= 0")
        if not 0 < self.down_rate <= 1:
            raise ValueError("down_rate must be in (0, 1]")

    @classmethod
    def provider(cls, cooldown_s: float = BREAKER_COOLDOWN_S) -> BreakerPolicy:
        """A provider's breaker: opens only when its models together look down."""
        return cls(cooldown_s=cooldown_s, min_calls=PROVIDER_BREAKER_MIN_CALLS, trip_on_streak=False)

    @classmethod
    def from_settings(cls, s: BreakerSettings, cooldown_s: float | None = None) -> BreakerPolicy:
        """A model's policy from the config; `cooldown_s` replaces the configured one (a
        time-compressed benchmark), and the flaky cooldown shrinks in proportion."""
        scale = 1.0 if cooldown_s is None or not s.cooldown_s else cooldown_s / s.cooldown_s
        return cls(
            failure_threshold=s.failure_threshold,
            cooldown_s=s.cooldown_s if cooldown_s is None else cooldown_s,
            flaky_cooldown_s=s.flaky_cooldown_s * min(1.0, scale),
            window_calls=s.window_calls,
            window_s=s.window_s,
            down_rate=s.down_rate,
            min_calls=s.down_min_calls,
            half_open_probes=s.half_open_probes,
        )

    def for_provider(self) -> BreakerPolicy:
        """The same judgement for a provider's breaker, which trips only on "down"."""
        return replace(self, trip_on_streak=False)


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
    #: Share of failures among the outcomes in its window (0 with none).
    failure_rate: float = 0.0
    #: Outcomes in its window.
    window_calls: int = 0
    #: What the window said when it last opened: "down", "flaky", or "" (never opened).
    health: Health = ""
    #: The cooldown it opened with last.
    cooldown_s: float = 0.0
    #: Why it last opened, in words.
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Permit:
    """Leave to make one call; hand it back with the outcome."""

    generation: int
    probe: bool
    #: Let through an open (flaky) breaker because the caller had no other model left.
    forced: bool = False


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
        policy: BreakerPolicy | None = None,
    ) -> None:
        if policy is None:
            policy = BreakerPolicy(failure_threshold=failure_threshold, cooldown_s=cooldown_s)
        self.model_id = model_id
        self.policy = policy
        self.failure_threshold = policy.failure_threshold
        self.cooldown_s = policy.cooldown_s
        self._clock: Clock = clock or SystemClock()
        self._hooks = hooks
        self._state: BreakerState = "closed"
        self._failures = 0
        self._opened_at: float | None = None
        # Bumped each time the breaker opens; permits from older generations are stale.
        self._generation = 0
        self._probes_in_flight = 0
        self._opens = 0
        # Opens since it last closed: a flaky cooldown grows with it.
        self._opens_in_a_row = 0
        self._cooldown_now = 0.0
        self._health: Health = ""
        self._reason = ""
        self._window: deque[tuple[float, bool]] = deque()
        # Permits handed out whose outcome has not come back yet.
        self._in_flight = 0

    @property
    def state(self) -> BreakerState:
        self._tick()
        return self._state

    @property
    def health(self) -> Health:
        """What the window says now: "down", "flaky" (some failures), or "" (no failures).

        Calls still in flight count against "down": errors come back in milliseconds while
        answers take seconds, so when many calls start together the first outcomes are the
        failures; a provider is down only when its calls in flight are failing too."""
        rate, n = self.failure_rate()
        failed = rate * n
        if (
            n >= (self.policy.min_calls or self.policy.failure_threshold)
            and failed >= self.policy.down_rate * (n + self._in_flight) - 1e-9
        ):
            return "down"
        return "flaky" if rate > 0 else ""

    @property
    def reopens_in_s(self) -> float:
        self._tick()
        if self._state != "open" or self._opened_at is None:
            return 0.0
        return max(0.0, self._opened_at + self._cooldown_now - self._clock.monotonic())

    def failure_rate(self) -> tuple[float, int]:
        """(share of failures, outcomes) in the sliding window."""
        self._prune()
        n = len(self._window)
        return (sum(1 for _, failed in self._window if failed) / n if n else 0.0), n

    def success_rate(self) -> float:
        """Share of successes in the window; 1.0 with no outcomes (nothing against it)."""
        rate, n = self.failure_rate()
        return 1.0 - rate if n else 1.0

    def snapshot(self) -> BreakerSnapshot:
        reopens_in_s = self.reopens_in_s
        rate, n = self.failure_rate()
        return BreakerSnapshot(
            self._state,
            self._failures,
            self._opened_at,
            reopens_in_s,
            self._opens,
            failure_rate=round(rate, 3),
            window_calls=n,
            health=self._health,
            cooldown_s=self._cooldown_now,
            reason=self._reason,
        )

    def allow(self, *, force: bool = False) -> Permit | None:
        """A permit to call, or None while open (or half-open with every probe slot taken).

        `force` lets a call through an open breaker whose last opening was "flaky", not "down"."""
        self._tick()
        permit = None
        if self._state == "closed":
            permit = Permit(self._generation, probe=False)
        elif self._state == "half_open" and self._probes_in_flight < self.policy.half_open_probes:
            self._probes_in_flight += 1
            permit = Permit(self._generation, probe=True)
        elif force and self._health == "flaky" and self.health != "down":
            permit = Permit(self._generation, probe=False, forced=True)
        if permit is not None:
            self._in_flight += 1
        return permit

    def record_success(self, permit: Permit) -> None:
        self._observe(permit, failed=False)
        if not self._is_current(permit):
            return
        self._failures = 0
        if permit.probe:
            self._probes_in_flight -= 1
        if permit.probe or permit.forced:
            self._probes_in_flight = 0
            self._opens_in_a_row = 0
            self._move_to("closed")

    def record_failure(self, permit: Permit) -> None:
        self._observe(permit, failed=True)
        if not self._is_current(permit):
            return
        self._failures += 1
        if permit.probe:
            self._open("a probe failed")
        elif permit.forced:
            return  # the breaker is already open; a forced call only informs the window
        elif self.policy.trip_on_streak and self._failures >= self.policy.failure_threshold:
            self._open(f"{self._failures} consecutive failures")
        elif not self.policy.trip_on_streak and self.health == "down":
            self._open("the window says down")

    def release(self, permit: Permit) -> None:
        """The call ended with no verdict on the provider (cancelled, or a bug of ours)."""
        self._in_flight = max(0, self._in_flight - 1)
        if permit.probe and self._is_current(permit):
            self._probes_in_flight = max(0, self._probes_in_flight - 1)

    def _observe(self, permit: Permit, *, failed: bool) -> None:
        # Every outcome informs the window, stale or not: it is what the provider did.
        self._in_flight = max(0, self._in_flight - 1)
        self._window.append((self._clock.monotonic(), failed))
        self._prune()

    def _prune(self) -> None:
        horizon = self._clock.monotonic() - self.policy.window_s
        while self._window and (len(self._window) > self.policy.window_calls or self._window[0][0] < horizon):
            self._window.popleft()

    def _is_current(self, permit: Permit) -> bool:
        # No plain permit is issued while open, and opening bumps the generation, so a current
        # permit is a closed-state call, a half-open probe or a forced call.
        return permit.generation == self._generation

    def _tick(self) -> None:
        if (
            self._state == "open"
            and self._opened_at is not None
            and self._clock.monotonic() - self._opened_at >= self._cooldown_now
        ):
            self._move_to("half_open")

    def _open(self, why: str) -> None:
        rate, n = self.failure_rate()
        # Down stays down while nothing in the window succeeds (the window may have aged out
        # during a long cooldown, leaving only the failed probe in it).
        still_down = self._health == "down" and rate >= self.policy.down_rate
        self._health = "down" if self.health == "down" or still_down else "flaky"
        p = self.policy
        if self._health == "down":
            self._cooldown_now = p.cooldown_s
        else:
            grown = p.flaky_cooldown_s * p.growth ** min(self._opens_in_a_row, 32)
            self._cooldown_now = min(p.cooldown_s, grown)
        self._reason = (
            f"{why}; {rate:.0%} of the last {n} calls failed: {self._health}, "
            f"cooldown {self._cooldown_now:g}s"
        )
        self._opens += 1
        self._opens_in_a_row += 1
        self._generation += 1
        self._opened_at = self._clock.monotonic()
        self._probes_in_flight = 0
        self._move_to("open")

    def _move_to(self, new: BreakerState) -> None:
        old, self._state = self._state, new
        if old != new:
            self._hooks(BreakerTransition(self.model_id, old, new))


class BreakingModel(WrapperModel):
    """Raises `CircuitOpen` without calling the inner model while its breaker (or its
    provider's) refuses calls. A request tagged `FORCE_TAG` may pass a flaky open breaker."""

    def __init__(
        self, inner: ChatModel, breaker: CircuitBreaker, provider: CircuitBreaker | None = None
    ) -> None:
        super().__init__(inner)
        self.breaker = breaker
        self.provider_breaker = provider

    def _refused(self, breaker: CircuitBreaker) -> CircuitOpen:
        snap = breaker.snapshot()
        return CircuitOpen(
            model=self.model_id,
            reopens_in_s=snap.reopens_in_s,
            down=breaker.health == "down" or snap.health == "down",
            reason=snap.reason if breaker is self.breaker else f"provider {breaker.model_id}: {snap.reason}",
        )

    async def complete(self, request: ChatRequest) -> ChatResponse:
        force = bool(request.tags.get(FORCE_TAG))
        permit = self.breaker.allow(force=force)
        if permit is None:
            raise self._refused(self.breaker)
        outer = self.provider_breaker
        provider_permit = outer.allow(force=force) if outer is not None else None
        if outer is not None and provider_permit is None:
            self.breaker.release(permit)
            raise self._refused(outer)
        pairs = [(self.breaker, permit)]
        if outer is not None and provider_permit is not None:
            pairs.append((outer, provider_permit))
        try:
            response = await self.inner.complete(request)
        except BaseException as error:
            for breaker, p in pairs:
                if counts_as_outage(error):
                    breaker.record_failure(p)
                elif isinstance(error, ProviderError) and not isinstance(error, CircuitOpen):
                    breaker.record_success(p)  # the provider answered, if badly
                else:
                    breaker.release(p)
            raise
        for breaker, p in pairs:
            breaker.record_success(p)
        return response


class BreakerRegistry:
    """One breaker per model id and one per provider, shared by every course of the engine."""

    def __init__(
        self,
        *,
        failure_threshold: int = BREAKER_FAILURE_THRESHOLD,
        cooldown_s: float = BREAKER_COOLDOWN_S,
        clock: Clock | None = None,
        hooks: Hooks = no_hooks,
        policy: BreakerPolicy | None = None,
        provider_policy: BreakerPolicy | None = None,
    ) -> None:
        scale = cooldown_s / BREAKER_COOLDOWN_S if BREAKER_COOLDOWN_S else 1.0
        self._policy = policy or BreakerPolicy(
            failure_threshold=failure_threshold,
            cooldown_s=cooldown_s,
            # A time-compressed run compresses the flaky cooldown like the down one.
            flaky_cooldown_s=BREAKER_FLAKY_COOLDOWN_S * min(1.0, scale),
        )
        self._provider_policy = provider_policy or BreakerPolicy.provider(cooldown_s)
        self._clock: Clock = clock or SystemClock()
        self._hooks = hooks
        self._breakers: dict[str, CircuitBreaker] = {}
        self._providers: dict[str, CircuitBreaker] = {}

    def breaker(self, model_id: str) -> CircuitBreaker:
        """The model's breaker, created closed on first use."""
        found = self._breakers.get(model_id)
        if found is None:
            found = CircuitBreaker(
                model_id=model_id, clock=self._clock, hooks=self._hooks, policy=self._policy
            )
            self._breakers[model_id] = found
        return found

    def provider_breaker(self, name: str) -> CircuitBreaker:
        """The provider's breaker (every model behind it reports to it), created closed."""
        found = self._providers.get(name)
        if found is None:
            found = CircuitBreaker(
                model_id=f"provider:{name}",
                clock=self._clock,
                hooks=self._hooks,
                policy=self._provider_policy,
            )
            self._providers[name] = found
        return found

    def wrap(self, inner: ChatModel, provider: str | None = None) -> BreakingModel:
        outer = self.provider_breaker(provider) if provider is not None else None
        return BreakingModel(inner, self.breaker(inner.model_id), outer)

    def success_rate(self, model_id: str) -> float:
        """Share of the model's recent calls that the provider answered (1.0 with none)."""
        found = self._breakers.get(model_id)
        return found.success_rate() if found is not None else 1.0

    def snapshots(self) -> dict[str, BreakerSnapshot]:
        """Every model's breaker, then every provider's (keyed `provider:<name>`)."""
        out = {model_id: b.snapshot() for model_id, b in sorted(self._breakers.items())}
        out.update({b.model_id: b.snapshot() for _, b in sorted(self._providers.items())})
        return out
