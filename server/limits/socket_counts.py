"""``MAX_SOCKETS_PER_USER`` across web instances: each ``sub``'s sockets in one Redis sorted set.

Key ``<prefix>:sockets:<sub>``: a member per socket (``<instance>/<namespace>/<sid>``) scored
with when it lapses (Redis's clock, milliseconds). Admission is one Lua script: forget
lapsed members, refuse when the set holds the limit, else add the socket. A socket that
leaves is removed at once; the sockets an instance still holds are written again every
:data:`REFRESH_S`, so the sockets of an instance that died lapse within :data:`TTL_S`
(until then its user may be refused a socket too many). When Redis does not answer,
admission falls back to this process's own count (each instance then limits alone), as
the rate buckets do (:mod:`server.limits.buckets`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any

from redis.exceptions import RedisError

log = logging.getLogger(__name__)

#: A socket's entry lapses this long after it was last written.
TTL_S = 60.0
#: How often an instance writes the entries of the sockets it holds again.
REFRESH_S = 20.0

#: KEYS[1] the user's set; ARGV member, limit, ttl in ms. 1: admitted, 0: refused.
_ADMIT_SCRIPT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
"""

#: KEYS[1] the user's set; ARGV ttl in ms, then the members to keep.
_REFRESH_SCRIPT = """
local clock = redis.call('TIME')
local lapse = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000) + tonumber(ARGV[1])
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], lapse, ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]))
return #ARGV - 1
"""


class RedisSocketCounts:
    def __init__(
        self, redis: Any, *, prefix: str, ttl_s: float = TTL_S, refresh_s: float = REFRESH_S
    ) -> None:
        self._redis = redis
        self._prefix = f"{prefix}:sockets:"
        self._ttl_ms = int(ttl_s * 1000)
        self._refresh_s = refresh_s
        self._admit = redis.register_script(_ADMIT_SCRIPT)
        self._refresh = redis.register_script(_REFRESH_SCRIPT)
        self._instance = uuid.uuid4().hex
        self._held: dict[str, set[str]] = {}
        self._gone: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._failing = False

    def member(self, sid: str, namespace: str) -> str:
        return f"{self._instance}/{namespace}/{sid}"

    async def admit(self, sub: str, member: str, limit: int) -> bool | None:
        """Whether ``sub`` may hold one more socket (``member``) across instances; ``None``
        when Redis did not answer (the caller counts in process)."""
        try:
            admitted = await self._admit(
                keys=[self._prefix + sub], args=[member, limit, self._ttl_ms]
            )
        except (RedisError, OSError) as exc:
            self._failed(exc)
            return None
        self._works()
        if admitted:
            self._held.setdefault(sub, set()).add(member)
        return bool(admitted)

    def release(self, sub: str, member: str) -> None:
        """The socket left; its entry goes at once (by :meth:`run`)."""
        held = self._held.get(sub)
        if held is not None and member in held:
            held.discard(member)
            if not held:
                del self._held[sub]
            self._gone.put_nowait((sub, member))

    async def run(self) -> None:
        """Until cancelled: remove the entries of sockets that left, write those held again
        every :data:`REFRESH_S`."""
        loop = asyncio.get_running_loop()
        due = loop.time() + self._refresh_s
        while True:
            with contextlib.suppress(TimeoutError):
                sub, member = await asyncio.wait_for(self._gone.get(), due - loop.time())
                await self._quietly(self._redis.zrem(self._prefix + sub, member))
            if loop.time() >= due:
                due = loop.time() + self._refresh_s
                for sub, members in list(self._held.items()):
                    args = [self._ttl_ms, *sorted(members)]
                    await self._quietly(self._refresh(keys=[self._prefix + sub], args=args))

    async def _quietly(self, command: Any) -> None:
        try:
            await command
        except (RedisError, OSError) as exc:
            self._failed(exc)
        else:
            self._works()

    def _failed(self, exc: BaseException) -> None:
        if not self._failing:
            log.warning("sockets per user count in process: Redis failed (%s)", exc)
            self._failing = True

    def _works(self) -> None:
        if self._failing:
            log.info("sockets per user count in Redis again")
            self._failing = False


__all__ = ["REFRESH_S", "TTL_S", "RedisSocketCounts"]
