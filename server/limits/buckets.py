"""Token buckets keyed by caller: ``rate`` tokens a second, up to ``burst``; one call takes one.

:class:`LocalRateLimiter` counts in this process. :class:`RedisRateLimiter` counts in Redis (one
Lua script, Redis's own clock, tokens taken in small batches), so that a limit on "one user"
holds across web instances; when Redis does not answer it fails open to its in-process
buckets (each instance then limits alone) rather than refusing every call.
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


#: KEYS[1] the bucket; ARGV rate, burst, want. Returns "<granted> <wait>": up to ``want``
#: tokens taken (at least one, or none and the seconds until one is there).
_TAKE_SCRIPT = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local granted, wait = 0, 0
if tokens >= 1 then
  granted = math.min(want, math.floor(tokens))
  tokens = tokens - granted
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return tostring(granted) .. ' ' .. tostring(wait)
"""

#: An instance takes this much of a second's rate from Redis at once (at least one token)
#: and spends it locally, so that a busy caller costs one round trip per batch, not per call.
BATCH_OF_RATE = 0.02
#: Tokens taken but not spent within this many seconds are dropped (a caller is never
#: admitted beyond the shared bucket; an idle instance's leftovers only under-admit).
BATCH_LIFETIME_S = 0.25


class RedisRateLimiter:
    """Buckets in Redis under ``<prefix>:<key>``; in process while Redis fails.

    Each call of a key that has no tokens left here takes a batch from Redis (up to
    :data:`BATCH_OF_RATE` of the rate: 20 tokens at 1000/s, 1 at 50/s) and the next calls
    spend it without a round trip. Tokens are taken from the shared bucket before they are
    spent, so across instances a key is never admitted more than the bucket allows."""

    def __init__(
        self,
        redis: Any,
        *,
        prefix: str,
        rate: float,
        burst: float,
        batch: int | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self.rate, self.burst = rate, burst
        self._script = redis.register_script(_TAKE_SCRIPT)
        self.fallback = LocalRateLimiter(rate=rate, burst=burst)
        self._failing = False
        self._batch = batch or max(1, min(int(burst), int(rate * BATCH_OF_RATE)))
        self._clock = clock
        #: key -> (tokens taken from Redis, not yet spent; when they lapse)
        self._spare: dict[str, tuple[int, float]] = {}
        #: Round trips to Redis (one per batch).
        self.round_trips = 0

    async def take(self, key: str) -> float | None:
        now = self._clock()
        spare = self._spare.get(key)
        if spare is not None and spare[0] > 0 and now < spare[1]:
            self._spare[key] = (spare[0] - 1, spare[1])
            return None
        try:
            self.round_trips += 1
            answer = await self._script(
                keys=[f"{self._prefix}:{key}"], args=[self.rate, self.burst, self._batch]
            )
        except (RedisError, OSError) as exc:
            if not self._failing:
                log.warning("rate limits count in process: Redis failed (%s)", exc)
                self._failing = True
            return self.fallback.take_now(key)
        if self._failing:
            log.info("rate limits count in Redis again")
            self._failing = False
        granted_text, wait_text = (answer.decode() if isinstance(answer, bytes) else answer).split()
        granted = int(float(granted_text))
        if granted < 1:
            return float(wait_text)
        if granted > 1:
            if len(self._spare) >= MAX_LOCAL_KEYS:
                self._spare = {k: v for k, v in self._spare.items() if v[1] > now}
            self._spare[key] = (granted - 1, now + BATCH_LIFETIME_S)
        else:
            self._spare.pop(key, None)
        return None


__all__ = ["LocalRateLimiter", "RateLimiter", "RedisRateLimiter"]
