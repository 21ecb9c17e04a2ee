"""Socket sessions and their limits: a socket lives no longer than its token.

At admission a socket is counted against ``MAX_SOCKETS_PER_USER`` and gets a deadline at its
token's ``exp`` plus the leeway (every socket's on one loop timer: :mod:`.deadlines`); when it
is reached the server emits ``session:expired`` ``{}`` and disconnects the socket.
``auth:refresh`` ``{token}`` with a token of the same ``sub`` and role moves the deadline to
the new ``exp``. A socket that leaves loses its deadline and its count, so nothing outlives
it. Every call passes :meth:`SocketGuard.admit_call` (call rates, calls in
flight per socket).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from server.actors import Actor
from server.auth import Identity, TokenVerifier
from server.errors import Forbidden
from server.limits.calls import CallLimits, SocketQuota
from server.realtime.deadlines import Deadlines, Key
from server.realtime.sockets import SocketServer
from server.tasks import start_task

log = logging.getLogger(__name__)

REFRESH_EVENT = "auth:refresh"
EXPIRED_EVENT = "session:expired"


class SocketGuard:
    def __init__(
        self,
        sockets: SocketServer,
        *,
        verifier: TokenVerifier,
        limits: CallLimits,
        quota: SocketQuota,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._sockets = sockets
        self._verifier = verifier
        self.limits = limits
        self.quota = quota
        self._session_ends = Deadlines(self._expire_soon, clock=clock)
        self._expiring: set[asyncio.Task[None]] = set()
        sockets.on_socket_gone.append(self.forget)

    # -- admission and calls ------------------------------------------------------------------

    async def admit_socket(self, sid: str, namespace: str, identity: Identity) -> None:
        """Count the socket (``rate_limited`` beyond the bound) and set its session's end."""
        await self.quota.admit(sid, namespace, identity.actor.id)
        self._schedule(sid, namespace, identity)

    async def admit_call(self, sid: str, actor: Actor) -> None:
        """Before one call: refused when the socket has too many calls in flight or the
        caller is over its rate; a refusal takes nothing. An admitted call ends with
        :meth:`call_done` (two plain calls, not a context manager: this runs for every
        call)."""
        self.quota.enter_call(sid)
        try:
            await self.limits.admit(actor)
        except BaseException:
            self.quota.leave_call(sid)
            raise

    def call_done(self, sid: str) -> None:
        """An admitted call ended."""
        self.quota.leave_call(sid)

    async def refresh(self, sid: str, namespace: str, current: Identity, token: object) -> Identity:
        """The identity of a fresh token of the same ``sub`` and role, saved for the socket
        with its session's end moved; :class:`Unauthorized` / :class:`Forbidden` otherwise."""
        fresh = self._verifier.verify(token)
        if fresh.actor != current.actor:
            raise Forbidden(
                "auth:refresh needs a token of the same sub and role as the socket's",
                details={"field": "token"},
            )
        await self._sockets.save_identity(sid, namespace, fresh)
        self._schedule(sid, namespace, fresh)
        return fresh

    # -- session ends -------------------------------------------------------------------------

    def _schedule(self, sid: str, namespace: str, identity: Identity) -> None:
        self._session_ends.set((sid, namespace), identity.session_ends_at)

    def _expire_soon(self, key: Key) -> None:
        task = start_task(self._expire(*key), name=f"session-expired-{key[0]}")
        self._expiring.add(task)
        task.add_done_callback(self._expiring.discard)

    async def _expire(self, sid: str, namespace: str) -> None:
        log.info("session of socket %s on %s expired", sid, namespace)
        try:
            await self._sockets.emit_to_socket(EXPIRED_EVENT, {}, sid, namespace)
            await self._sockets.disconnect_socket(sid, namespace)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("ending the expired session of %s failed", sid)

    def forget(self, sid: str, namespace: str) -> None:
        """The socket left: its session's end and its count go."""
        self._session_ends.discard((sid, namespace))
        self.quota.release(sid, namespace)

    def timers(self) -> int:
        """Sockets whose session's end is still to come."""
        return len(self._session_ends)

    async def close(self) -> None:
        """Drop every session's end and cancel the expiries under way (at shutdown)."""
        self._session_ends.close()
        pending = list(self._expiring)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


__all__ = ["EXPIRED_EVENT", "REFRESH_EVENT", "SocketGuard"]
