"""Token buckets keyed by caller: ``rate`` tokens a second, up to ``burst``; one call takes one.

:class:`LocalRateLimiter` counts in this process. :class:`RedisRateLimiter` counts in Redis (one
Lua script, Redis's own clock), so that a limit on "one user" holds across web instances; when
Redis does not answer it fails open to its in-process buckets (each instance then limits
alone) rather than refusing every call.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from redis.exceptions import RedisError

log = logging.getLogger(__name__)

Clock = Callable[[], float]

#: Idle buckets are forgotten once more than this many keys are held.
MAX_LOCAL_KEYS = 100_000


class RateLimiter(Protocol):
    async def take(self, key: str) -> float | None:
        """``None`` when ``key`` may call now (a token is taken); else the seconds until it
        may (nothing is taken)."""


class LocalRateLimiter:
    def __init__(self, *, rate: float, burst: float, clock: Clock = time.monotonic) -> None:
        self.rate, self.burst = rate, burst
        #: Seconds, monotonic; tests drive time through it.
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    async def take(self, key: str) -> float | None:
        return self.take_now(key)

    def take_now(self, key: str) -> float | None:
        now = self.clock()
        tokens, at = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + max(0.0, now - at) * self.rate)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate
        self._buckets[key] = (tokens - 1, now)
        if len(self._buckets) > MAX_LOCAL_KEYS:
            self._forget_full(now)
        return None

    def _forget_full(self, now: float) -> None:
        """Drop buckets that have refilled: they hold nothing a fresh bucket would not."""
        full_after = self.burst / self.rate
        for key, (_, at) in list(self._buckets.items()):
            if now - at >= full_after:
                del self._buckets[key]

    def __len__(self) -> int:
        return len(self._buckets)


#: KEYS[1] the bucket; ARGV rate, burst. Returns the wait in seconds as text ("0": allowed).
_TAKE_SCRIPT = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return tostring(wait)
"""


class RedisRateLimiter:
    """Buckets in Redis under ``<prefix>:<key>``; in process while Redis fails."""

    def __init__(self, redis: Any, *, prefix: str, rate: float, burst: float) -> None:
        self._redis = redis
        self._prefix = prefix
        self.rate, self.burst = rate, burst
        self._script = redis.register_script(_TAKE_SCRIPT)
        self.fallback = LocalRateLimiter(rate=rate, burst=burst)
        self._failing = False

    async def take(self, key: str) -> float | None:
        try:
            answer = await self._script(
                keys=[f"{self._prefix}:{key}"], args=[self.rate, self.burst]
            )
        except (RedisError, OSError) as exc:
            if not self._failing:
                log.warning("rate limits count in process: Redis failed (%s)", exc)
                self._failing = True
            return self.fallback.take_now(key)
        if self._failing:
            log.info("rate limits count in Redis again")
            self._failing = False
        wait = float(answer.decode() if isinstance(answer, bytes) else answer)
        return wait if wait > 0 else None


__all__ = ["LocalRateLimiter", "RateLimiter", "RedisRateLimiter"]
