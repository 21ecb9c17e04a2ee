"""What the transports ask before a call: may this caller call now, may this socket connect,
may it start one more call. Each refusal is :func:`~server.limits.refusal.rate_limited` and
changes nothing."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from server.actors import Actor, Role
from server.config import LimitSettings
from server.limits.buckets import LocalRateLimiter, RateLimiter, RedisRateLimiter
from server.limits.refusal import rate_limited
from server.limits.socket_counts import RedisSocketCounts


class CallLimits:
    """Call rates per user (REST and ``/`` together) and per worker ``sub`` (``/workers``)."""

    def __init__(self, settings: LimitSettings, *, users: RateLimiter, workers: RateLimiter):
        self.settings = settings
        self.users = users
        self.workers = workers

    @classmethod
    def build(
        cls, settings: LimitSettings, *, redis: Any = None, prefix: str = "jobspine"
    ) -> CallLimits:
        """In Redis when a client is given (limits across instances), else in process."""
        burst = settings.burst_factor
        user_rate, worker_rate = settings.user_calls_per_s, settings.worker_calls_per_s
        if redis is None:
            return cls(
                settings,
                users=LocalRateLimiter(rate=user_rate, burst=burst * user_rate),
                workers=LocalRateLimiter(rate=worker_rate, burst=burst * worker_rate),
            )
        return cls(
            settings,
            users=RedisRateLimiter(
                redis, prefix=f"{prefix}:rate:user", rate=user_rate, burst=burst * user_rate
            ),
            workers=RedisRateLimiter(
                redis, prefix=f"{prefix}:rate:worker", rate=worker_rate, burst=burst * worker_rate
            ),
        )

    # admit_user and admit_worker are plain functions handing back _take's coroutine: one
    # pairing of bucket, limit and rate each, and no coroutine frame of their own on the way
    # (every Socket.IO call comes through admit).

    def admit_user(self, actor: Actor) -> Awaitable[None]:
        return _take(self.users, actor, "user_calls_per_s", self.settings.user_calls_per_s)

    def admit_worker(self, actor: Actor) -> Awaitable[None]:
        return _take(self.workers, actor, "worker_calls_per_s", self.settings.worker_calls_per_s)

    async def admit(self, actor: Actor) -> None:
        """The bucket of ``actor``'s side: workers on theirs, users and admins on theirs."""
        if actor.role is Role.WORKER:
            await self.admit_worker(actor)
        else:
            await self.admit_user(actor)


async def _take(bucket: RateLimiter, actor: Actor, limit: str, per_s: float) -> None:
    """One call of ``actor`` from ``bucket``; ``rate_limited`` (naming ``limit``) when empty."""
    wait = await bucket.take(actor.id)
    if wait is not None:
        raise rate_limited(limit, wait, f"more than {per_s:g} calls per second; slow down")


class SocketQuota:
    """Sockets per ``sub`` (across instances with ``shared``, else in this process) and calls
    in flight per socket."""

    def __init__(self, settings: LimitSettings, shared: RedisSocketCounts | None = None) -> None:
        self.settings = settings
        self.shared = shared
        self._sockets: dict[str, set[tuple[str, str]]] = {}
        self._owner: dict[tuple[str, str], str] = {}
        self._in_flight: dict[str, int] = {}

    async def admit(self, sid: str, namespace: str, sub: str) -> None:
        """Count a socket of ``sub``; ``rate_limited`` when it has too many already."""
        key, limit = (sid, namespace), self.settings.max_sockets_per_user
        held = self._sockets.setdefault(sub, set())
        if key in held:
            return
        if len(held) >= limit:
            if not held:
                del self._sockets[sub]
            raise self._refusal()
        held.add(key)  # held here while Redis is asked, so that local admissions race not
        self._owner[key] = sub
        if self.shared is None:
            return
        member = self.shared.member(sid, namespace)
        admitted = await self.shared.admit(sub, member, limit)
        if key not in self._owner:  # it left while Redis was asked
            self.shared.release(sub, member)
        elif admitted is False:
            self.release(sid, namespace)
            raise self._refusal()

    def _refusal(self) -> Exception:
        return rate_limited(
            "max_sockets_per_user",
            1.0,
            f"at most {self.settings.max_sockets_per_user} sockets per user; close one",
        )

    def release(self, sid: str, namespace: str) -> None:
        sub = self._owner.pop((sid, namespace), None)
        if sub is None:
            return
        held = self._sockets.get(sub)
        if held is not None:
            held.discard((sid, namespace))
            if not held:
                del self._sockets[sub]
        if self.shared is not None:
            self.shared.release(sub, self.shared.member(sid, namespace))

    def sockets_of(self, sub: str) -> int:
        return len(self._sockets.get(sub, ()))

    def enter_call(self, sid: str) -> None:
        """One more call of socket ``sid`` in flight; ``rate_limited`` beyond the bound (and
        then nothing is counted). Pair with :meth:`leave_call`."""
        count = self._in_flight.get(sid, 0)
        if count >= self.settings.max_calls_in_flight_per_socket:
            raise rate_limited(
                "calls_in_flight_per_socket",
                0.1,
                f"at most {self.settings.max_calls_in_flight_per_socket} calls of one socket "
                "at once; wait for their acks",
            )
        self._in_flight[sid] = count + 1

    def leave_call(self, sid: str) -> None:
        """A call of ``sid`` that :meth:`enter_call` counted ended."""
        left = self._in_flight[sid] - 1
        if left:
            self._in_flight[sid] = left
        else:
            del self._in_flight[sid]


__all__ = ["CallLimits", "SocketQuota"]
