from __future__ import annotations

import math
import random

import pytest

from courseforge.errors import (
    BadResponse,
    CircuitOpen,
    ProviderConnectionError,
    ProviderError,
    ProviderHTTPError,
    ProviderTimeout,
    RateLimited,
)
from courseforge.providers.base import ChatRequest
from courseforge.resilience import (
    INITIAL_RETRY_DELAY_S,
    MAX_RETRY_DELAY_S,
    FakeClock,
    RecordingHooks,
    RetryingModel,
    RetryScheduled,
    fault_kind,
    is_transient,
    retry_delay_s,
)
from courseforge.testing import ScriptedModel, sequence

from .conftest import SEED


class _Extreme(random.Random):
    """Draws the top (or bottom) of every range, to check the backoff ceilings exactly."""

    def __init__(self, top: bool) -> None:
        super().__init__(0)
        self.top = top

    def uniform(self, a: float, b: float) -> float:
        return b if self.top else a


@pytest.mark.parametrize(
    ("attempt", "ceiling"),
    [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (6, 8.0), (70, 8.0), (10_000, 8.0)],
)
def test_backoff_ceiling_doubles_then_caps(attempt: int, ceiling: float) -> None:
    assert retry_delay_s(attempt, None, _Extreme(top=True)) == ceiling
    assert retry_delay_s(attempt, None, _Extreme(top=False)) == 0.0


@pytest.mark.parametrize("attempt", [1, 2, 3, 4, 5, 8])
def test_full_jitter_stays_within_bounds_and_spreads(attempt: int) -> None:
    rng = random.Random(SEED)
    ceiling = min(MAX_RETRY_DELAY_S, INITIAL_RETRY_DELAY_S * 2 ** (attempt - 1))
    delays = [retry_delay_s(attempt, None, rng) for _ in range(500)]
    assert all(0.0 <= d <= ceiling for d in delays)
    # Full jitter: the draws cover the range rather than clustering near the ceiling.
    assert min(delays) < 0.1 * ceiling
    assert max(delays) > 0.9 * ceiling


@pytest.mark.parametrize(
    ("retry_after_s", "honoured"),
    [
        (0.0, True),
        (2.5, True),
        (30.0, True),
        (60.0, True),
        (60.5, False),
        (3600.0, False),
        (-1.0, False),
        (math.nan, False),
        (math.inf, False),
        (None, False),
    ],
)
def test_retry_after_used_only_when_sane(retry_after_s: float | None, honoured: bool) -> None:
    delay = retry_delay_s(3, retry_after_s, _Extreme(top=True))
    assert delay == (retry_after_s if honoured else 2.0)


def test_attempt_counts_from_one() -> None:
    with pytest.raises(ValueError):
        retry_delay_s(0, None, random.Random(0))


def _expected_delays(count: int) -> list[float]:
    rng = random.Random(SEED)
    return [retry_delay_s(n, None, rng) for n in range(1, count + 1)]


@pytest.mark.parametrize(
    ("failures", "max_retries", "calls", "succeeds"),
    [(0, 2, 1, True), (2, 2, 3, True), (4, 2, 3, False), (0, 4, 1, True), (2, 4, 3, True), (4, 4, 5, True)],
)
async def test_fails_n_times_then_succeeds(
    failures: int,
    max_retries: int,
    calls: int,
    succeeds: bool,
    clock: FakeClock,
    hooks: RecordingHooks,
    rng: random.Random,
    request_: ChatRequest,
) -> None:
    errors = [ProviderHTTPError(503, f"down #{i}", model="m") for i in range(failures)]
    inner = ScriptedModel(sequence([*errors, "ok"]), model_id="m")
    model = RetryingModel(inner, max_retries=max_retries, clock=clock, rng=rng, hooks=hooks)

    if succeeds:
        assert (await model.complete(request_)).text == "ok"
    else:
        with pytest.raises(ProviderHTTPError) as caught:
            await model.complete(request_)
        assert caught.value is errors[calls - 1]  # the last error, unchanged

    assert inner.calls == calls
    assert clock.sleeps == _expected_delays(calls - 1)
    assert hooks.retries == [
        RetryScheduled("m", n, delay, "http_503") for n, delay in enumerate(clock.sleeps, start=1)
    ]


async def test_retry_after_is_honoured(
    clock: FakeClock, hooks: RecordingHooks, request_: ChatRequest
) -> None:
    inner = ScriptedModel(sequence([RateLimited("slow down", retry_after_s=7.0), "ok"]))
    model = RetryingModel(inner, clock=clock, rng=random.Random(SEED), hooks=hooks)
    assert (await model.complete(request_)).text == "ok"
    assert clock.sleeps == [7.0]
    assert hooks.fault_counts() == {"rate_limited": 1}


async def test_insane_retry_after_falls_back_to_backoff(clock: FakeClock, request_: ChatRequest) -> None:
    inner = ScriptedModel(sequence([RateLimited("slow down", retry_after_s=86_400.0), "ok"]))
    model = RetryingModel(inner, clock=clock, rng=random.Random(SEED))
    assert (await model.complete(request_)).text == "ok"
    assert clock.sleeps == _expected_delays(1)
    assert 0.0 <= clock.sleeps[0] <= INITIAL_RETRY_DELAY_S


@pytest.mark.parametrize(
    "error",
    [
        ProviderHTTPError(400, "bad request"),
        ProviderHTTPError(401, "bad key"),
        BadResponse("not json", kind="unparseable"),
        BadResponse("schema", kind="schema"),
        CircuitOpen(model="m", reopens_in_s=30.0),
    ],
    ids=["400", "401", "bad_unparseable", "bad_schema", "circuit_open"],
)
async def test_non_transient_errors_are_not_retried(
    error: ProviderError, clock: FakeClock, hooks: RecordingHooks, request_: ChatRequest
) -> None:
    inner = ScriptedModel(sequence([error, "ok"]))
    model = RetryingModel(inner, max_retries=4, clock=clock, hooks=hooks)
    with pytest.raises(ProviderError) as caught:
        await model.complete(request_)
    assert caught.value is error
    assert inner.calls == 1
    assert clock.sleeps == []
    # Seen and counted as a fault, never retried.
    assert hooks.retries == []
    assert hooks.fault_counts() == {fault_kind(error): 1}


async def test_non_provider_errors_propagate_untouched(clock: FakeClock, request_: ChatRequest) -> None:
    inner = ScriptedModel(sequence([KeyError("bug"), "ok"]))
    model = RetryingModel(inner, max_retries=4, clock=clock)
    with pytest.raises(KeyError):
        await model.complete(request_)
    assert inner.calls == 1


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (ProviderHTTPError(500, ""), True),
        (ProviderHTTPError(503, ""), True),
        (ProviderHTTPError(408, ""), True),
        (RateLimited("", retry_after_s=None), True),
        (ProviderTimeout("slow"), True),
        (ProviderConnectionError("reset"), True),
        (ProviderHTTPError(404, ""), False),
        (BadResponse("", kind="empty"), False),
        (CircuitOpen(model="m", reopens_in_s=1.0), False),
    ],
)
def test_is_transient(error: ProviderError, expected: bool) -> None:
    assert is_transient(error) is expected


async def test_custom_predicate_and_delays(clock: FakeClock, request_: ChatRequest) -> None:
    """`retry_on` lets a caller retry what the default would not, e.g. empty answers."""
    inner = ScriptedModel(sequence([BadResponse("", kind="empty"), "ok"]))
    model = RetryingModel(
        inner,
        clock=clock,
        rng=_Extreme(top=True),
        retry_on=lambda e: isinstance(e, BadResponse) and e.kind == "empty",
        initial_delay_s=0.25,
    )
    assert (await model.complete(request_)).text == "ok"
    assert clock.sleeps == [0.25]


def test_rejects_negative_retries() -> None:
    with pytest.raises(ValueError):
        RetryingModel(ScriptedModel(sequence(["ok"])), max_retries=-1)
