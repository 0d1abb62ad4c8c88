"""Rate limits shared by every process and host that uses one API key, through Redis.

Same contract as `limits.RateLimiter` (`acquire(tokens)` waits for capacity and returns the
seconds waited) with the two token buckets (requests and tokens per minute) kept in one Redis
hash and updated by one Lua script, atomically, on the server's own clock (`TIME`), so workers
on hosts whose clocks disagree still share one budget. A caller that does not fit is told how
long until it would, sleeps (on its injected clock) and asks again; waiters in different
processes are not queued first-come-first-served, only within one process. 429s from the
provider are still handled by the retry wrapper.

Needs the `redis` package (`pip install 'courseforge[redis]'`); imported only when configured.
"""

from __future__ import annotations

import asyncio
from typing import Any

from .clock import Clock, SystemClock

__all__ = ["RedisRateLimiter"]

#: Seconds a bucket's key outlives its last use (a full refill takes 60 s).
_KEY_TTL_MS = 120_000

# KEYS[1]: the bucket hash. ARGV: rpm, tpm (0 = unlimited), tokens wanted, key TTL in ms.
# Returns the seconds to wait as a string ("0" = admitted and deducted).
_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rpm, tpm = tonumber(ARGV[1]), tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local h = redis.call('HMGET', KEYS[1], 'req', 'tok', 'ts')
local ts = tonumber(h[3]) or now
local elapsed = math.max(0, now - ts)
local req = rpm > 0 and math.min(rpm, (tonumber(h[1]) or rpm) + elapsed * rpm / 60) or 0
local tok = tpm > 0 and math.min(tpm, (tonumber(h[2]) or tpm) + elapsed * tpm / 60) or 0
local wait = 0
if rpm > 0 and req < 1 then wait = math.max(wait, (1 - req) * 60 / rpm) end
if tpm > 0 and want > 0 then
  local need = math.min(want, tpm)
  if tok < need then wait = math.max(wait, (need - tok) * 60 / tpm) end
  if wait == 0 then tok = tok - need end
end
if wait == 0 and rpm > 0 then req = req - 1 end
redis.call('HSET', KEYS[1], 'req', tostring(req), 'tok', tostring(tok), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return tostring(wait)
"""


class RedisRateLimiter:
    """RPM/TPM buckets in Redis under `key`; share the key to share the limit."""

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
                args = [self.rpm or 0, self.tpm or 0, tokens, _KEY_TTL_MS]
                wait = float(await self._script(keys=[self.key], args=args))
                if wait <= 0:
                    # Round trips to Redis are not waiting for capacity.
                    return self._clock.monotonic() - start if slept else 0.0
                await self._clock.sleep(wait)
                slept = True

    async def aclose(self) -> None:
        await self._client.aclose()
