"""Staying inside a provider's limits: request/token rates, calls in flight, time per call
(`LimitedModel`, one wrapper for all three).

`RateLimiter` paces requests and tokens per minute in this process; a caller that finds no
capacity waits for it instead of failing, because a 429 costs a round trip and a retry delay
while a local wait costs nothing. The pacing is GCRA (the generic cell rate algorithm) with a
burst of one: a request is let through when its theoretical arrival time has come, and each one
pushes the next by `60 / rpm` seconds (tokens: `tokens * 60 / tpm`). So no 60 s window ever holds
more than `rpm` requests (nor more than `tpm` tokens plus one request's), even right after a
quiet spell; a token bucket holding a minute of capacity let twice the limit through in one
minute (docs/scaling.md). `Limiter` is the interface (`acquire`) so a shared, Redis-backed
limiter (`redis_limits`, the same pacing) can replace it when several workers share one API key.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Protocol

from ..errors import ProviderTimeout
from ..providers.base import ChatModel, ChatRequest, ChatResponse
from ._wrapper import WrapperModel
from .clock import Clock, SystemClock
from .hooks import Hooks, RateLimitWait, no_hooks

__all__ = ["LimitedModel", "Limiter", "RateLimiter", "estimate_request_tokens"]

#: Float slack when comparing a pace's next time with now, so 1e-12 s early does not wait.
_EPSILON = 1e-9
#: Rough characters per token of English prompts, for the pre-call estimate.
_CHARS_PER_TOKEN = 4


class Limiter(Protocol):
    async def acquire(self, tokens: int = 0) -> float:
        """Wait until one request using `tokens` tokens fits; return the seconds waited."""
        ...


class _Pace:
    """GCRA with a burst of one: `per_minute` units spread evenly, none banked while idle."""

    def __init__(self, per_minute: int, now: float) -> None:
        self.capacity = float(per_minute)
        self.interval_s = 60.0 / per_minute
        self.ready_at = now  # the theoretical arrival time of the next unit

    def wait_s(self, now: float) -> float:
        wait = self.ready_at - now
        return 0.0 if wait <= _EPSILON else wait

    def take(self, amount: float, now: float) -> None:
        self.ready_at = max(self.ready_at, now) + amount * self.interval_s


class RateLimiter:
    """In-process requests-per-minute and tokens-per-minute limits (None means unlimited).

    Waiters are served first come, first served. A request larger than the whole TPM budget
    counts as exactly the budget (it goes through and the next waits a minute), rather than
    waiting forever.
    """

    def __init__(self, *, rpm: int | None = None, tpm: int | None = None, clock: Clock | None = None) -> None:
        for name, value in (("rpm", rpm), ("tpm", tpm)):
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 or None")
        self._clock: Clock = clock or SystemClock()
        now = self._clock.monotonic()
        self._requests = _Pace(rpm, now) if rpm else None
        self._tokens = _Pace(tpm, now) if tpm else None
        self._queue = asyncio.Lock()

    async def acquire(self, tokens: int = 0) -> float:
        if tokens < 0:
            raise ValueError("tokens must be >= 0")
        start = self._clock.monotonic()
        async with self._queue:
            while True:
                now = self._clock.monotonic()
                needs = self._needs(tokens)
                wait = max((pace.wait_s(now) for pace, _ in needs), default=0.0)
                if wait <= 0.0:
                    for pace, amount in needs:
                        pace.take(amount, now)
                    return now - start
                await self._clock.sleep(wait)

    def _needs(self, tokens: int) -> list[tuple[_Pace, float]]:
        needs: list[tuple[_Pace, float]] = []
        if self._requests is not None:
            needs.append((self._requests, 1.0))
        if self._tokens is not None and tokens:
            needs.append((self._tokens, min(float(tokens), self._tokens.capacity)))
        return needs


def estimate_request_tokens(request: ChatRequest) -> int:
    """Prompt characters / 4 plus `max_tokens`: an upper-leaning guess made before the call,
    since providers count the completion allowance against TPM too."""
    chars = sum(len(m.content) for m in request.messages)
    return chars // _CHARS_PER_TOKEN + 1 + request.max_tokens


class LimitedModel(WrapperModel):
    """A provider's limits around one model, in the order a call meets them: rate capacity
    (waited for, reported to hooks), a slot among the provider's calls in flight (a semaphore
    shared per provider), then the call itself bounded by `request.timeout_s` (else
    `default_timeout_s`; None: no bound). Time spent queueing for capacity or a slot is not
    charged to the call's timeout."""

    def __init__(
        self,
        inner: ChatModel,
        *,
        semaphore: asyncio.Semaphore | None = None,
        limiter: Limiter | None = None,
        estimate_tokens: Callable[[ChatRequest], int] = estimate_request_tokens,
        default_timeout_s: float | None = None,
        hooks: Hooks = no_hooks,
    ) -> None:
        if default_timeout_s is not None and default_timeout_s <= 0:
            raise ValueError("default_timeout_s must be > 0 or None")
        super().__init__(inner)
        self.semaphore = semaphore
        self.limiter = limiter
        self.default_timeout_s = default_timeout_s
        self._estimate_tokens = estimate_tokens
        self._hooks = hooks

    async def complete(self, request: ChatRequest) -> ChatResponse:
        if self.limiter is not None:
            waited_s = await self.limiter.acquire(self._estimate_tokens(request))
            if waited_s > 0:
                self._hooks(RateLimitWait(self.model_id, waited_s))
        timeout_s = request.timeout_s if request.timeout_s is not None else self.default_timeout_s
        async with self.semaphore if self.semaphore is not None else contextlib.nullcontext():
            try:
                async with asyncio.timeout(timeout_s):
                    return await self.inner.complete(request)
            except TimeoutError as error:
                if timeout_s is None:
                    raise  # not ours: the provider's own
                raise ProviderTimeout(f"no answer within {timeout_s:g}s", model=self.model_id) from error
