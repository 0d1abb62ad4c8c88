"""Rate limits shared by every process and host that uses one API key, through Redis.

Same contract and pacing as `limits.RateLimiter` (`acquire(tokens)` waits for capacity and
returns the seconds waited; GCRA with a burst of one, so no 60 s window holds more than `rpm`
requests across all processes, even after a quiet spell): the two theoretical arrival times
(requests, tokens) live in one Redis hash, read and advanced by one Lua script, atomically, on
the server's own clock (`TIME`), so workers on hosts whose clocks disagree still share one
budget. A caller that does not fit is told how long until it would, sleeps (on its injected
clock) and asks again; waiters in different processes are not queued first-come-first-served,
only within one process. The key expires once its times have passed (an idle key and a missing
one mean the same). 429s from the provider are still handled by the retry wrapper.

Needs the `redis` package (`pip install 'courseforge[redis]'`); imported only when configured.
"""

from __future__ import annotations

import asyncio
from typing import Any

from .clock import Clock, SystemClock

__all__ = ["RedisRateLimiter"]

#: Milliseconds a key outlives the later of its two times (past them it means nothing).
_KEY_SLACK_MS = 1_000

# KEYS[1]: the pacing hash (fields r, t: the next request's / token's time, server seconds).
# ARGV: rpm, tpm (0 = unlimited), tokens wanted, key slack in ms.
# Returns the seconds to wait as a string ("0" = admitted and the times advanced).
_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rpm, tpm = tonumber(ARGV[1]), tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local h = redis.call('HMGET', KEYS[1], 'r', 't')
local r = math.max(now, tonumber(h[1]) or now)
local tk = math.max(now, tonumber(h[2]) or now)
local wait = 0
if rpm > 0 then wait = math.max(wait, r - now) end
local cost = 0
if tpm > 0 and want > 0 then
  cost = math.min(want, tpm) * 60 / tpm
  wait = math.max(wait, tk - now)
end
if wait > 0.000001 then return string.format('%.6f', wait) end
if rpm > 0 then r = r + 60 / rpm end
tk = tk + cost
redis.call('HSET', KEYS[1], 'r', string.format('%.6f', r), 't', string.format('%.6f', tk))
redis.call('PEXPIRE', KEYS[1], math.ceil((math.max(r, tk) - now) * 1000) + tonumber(ARGV[4]))
return '0'
"""


class RedisRateLimiter:
    """RPM/TPM pacing in Redis under `key`; share the key to share the limit."""

    def __init__(
        self,
        url: str,
        *,
        key: str,
        rpm: int | None = None,
        tpm: int | None = None,
        clock: Clock | None = None,
        client: Any = None,
    ) -> None:
        for name, value in (("rpm", rpm), ("tpm", tpm)):
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 or None")
        if client is None:
            import redis.asyncio as aioredis

            client = aioredis.from_url(url)
        self._client = client
        self.key = key
        self.rpm = rpm
        self.tpm = tpm
        self._clock: Clock = clock or SystemClock()
        self._script = client.register_script(_SCRIPT)
        self._local = asyncio.Lock()

    async def acquire(self, tokens: int = 0) -> float:
        if tokens < 0:
            raise ValueError("tokens must be >= 0")
        start = self._clock.monotonic()
        # One waiter per process at a time keeps this process's callers first come, first served.
        async with self._local:
            slept = False
            while True:
                args = [self.rpm or 0, self.tpm or 0, tokens, _KEY_SLACK_MS]
                wait = float(await self._script(keys=[self.key], args=args))
                if wait <= 0:
                    # Round trips to Redis are not waiting for capacity.
                    return self._clock.monotonic() - start if slept else 0.0
                await self._clock.sleep(wait)
                slept = True

    async def aclose(self) -> None:
        await self._client.aclose()
