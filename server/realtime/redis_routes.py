"""Which Redis channels an instance listens to: one per room that its own sockets are in.

A room whose name has a ``:`` (every jobspine room: ``job:<id>``, ``user:<sub>``,
``idle:<type>``, ``lease:<job_id>``) gets a channel of its own, ``<REDIS_CHANNEL>:room:
<namespace>:<room>``; an emit to such rooms is published on their channels, so an instance
hears only the events of rooms one of its sockets is in. Anything else (an emit to every
socket or to one socket's own room, a remote disconnect) goes on ``REDIS_CHANNEL`` itself,
which every instance hears.

:class:`RoomRoutes` subscribes a room's channel when the first local socket enters the room
and unsubscribes it when the last one leaves, on the listener's connection, in order. A
caller that must not miss an event published after it joined (``job:subscribe`` reads the
backlog next) waits with :meth:`RoomRoutes.wait` until Redis confirmed the subscription.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from server.realtime.redis_connection import RedisConnection
from server.tasks import start_task

log = logging.getLogger(__name__)

#: How long joining a room waits at most for Redis to confirm its channel's subscription.
CONFIRM_TIMEOUT_S = 1.0


def is_routed(room: object) -> bool:
    """Whether ``room`` gets a channel of its own (socket ids never hold a ``:``)."""
    return isinstance(room, str) and ":" in room


class RoomRoutes:
    def __init__(self, channel: str, *, confirm_timeout_s: float = CONFIRM_TIMEOUT_S) -> None:
        self._prefix = f"{channel}:room:"
        self._confirm_timeout_s = confirm_timeout_s
        self._wanted: set[str] = set()
        self._confirmed: set[str] = set()
        #: Subscribe and unsubscribe commands sent whose confirmation has not arrived.
        self._unanswered: dict[str, int] = {}
        self._waiters: dict[str, asyncio.Event] = {}
        self._listening: RedisConnection | None = None
        self._commands: asyncio.Queue[tuple[bool, list[str]]] = asyncio.Queue()
        self._sender: asyncio.Task[None] | None = None

    def channel_of(self, namespace: str, room: str) -> str:
        return f"{self._prefix}{namespace}:{room}"

    def wanted(self) -> int:
        """Room channels this instance subscribes (or will once connected)."""
        return len(self._wanted)

    # -- membership, from the manager ---------------------------------------------------------

    def opened(self, namespace: str, room: str) -> None:
        """The first local socket entered ``room``."""
        channel = self.channel_of(namespace, room)
        if channel not in self._wanted:
            self._wanted.add(channel)
            if self._listening is not None:
                self._commands.put_nowait((True, [channel]))

    def closed(self, namespace: str, room: str) -> None:
        """The last local socket left ``room``."""
        channel = self.channel_of(namespace, room)
        if channel in self._wanted:
            self._wanted.discard(channel)
            self._confirmed.discard(channel)
            self._release(channel)
            if self._listening is not None:
                self._commands.put_nowait((False, [channel]))

    async def wait(self, namespace: str, room: str) -> None:
        """Until Redis confirmed the subscription of ``room``'s channel, for at most the
        confirm timeout; at once while the listener is not connected (the watchdog's repair
        then sends the latest events again once it is)."""
        if not is_routed(room):
            return
        channel = self.channel_of(namespace, room)
        if channel in self._confirmed or channel not in self._wanted or self._listening is None:
            return
        event = self._waiters.setdefault(channel, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), self._confirm_timeout_s)

    # -- the listener's connection ------------------------------------------------------------

    def attach(self, listening: RedisConnection) -> None:
        """The listener subscribed its connection ``listening``: subscribe every wanted
        channel on it, then follow membership changes in order."""
        self._listening = listening
        self._commands = asyncio.Queue()
        if self._wanted:
            self._commands.put_nowait((True, sorted(self._wanted)))
        self._sender = start_task(self._send_commands(listening), name="redis-routes")

    def detach(self) -> None:
        """The listener's connection is gone (closed first, so the command sender, cancelled
        here, ends at once): nothing is subscribed any more."""
        self._listening = None
        sender, self._sender = self._sender, None
        if sender is not None:
            sender.cancel()
        self._confirmed.clear()
        self._unanswered.clear()

    async def _send_commands(self, listening: RedisConnection) -> None:
        while True:
            subscribe, channels = await self._commands.get()
            for channel in channels:
                self._unanswered[channel] = self._unanswered.get(channel, 0) + 1
            try:
                await listening.send((b"SUBSCRIBE" if subscribe else b"UNSUBSCRIBE", *channels))
            except Exception as exc:  # the listener sees the broken connection too
                log.warning("redis: (un)subscribing room channels failed: %r", exc)
                return

    def answered(self, kind: str, channel: bytes) -> None:
        """Redis confirmed a ``subscribe`` or ``unsubscribe`` of ``channel``."""
        name = channel.decode(errors="replace")
        left = self._unanswered.get(name, 0) - 1
        if left > 0:
            self._unanswered[name] = left
            return
        self._unanswered.pop(name, None)
        if kind == "subscribe" and name in self._wanted:
            self._confirmed.add(name)
            self._release(name)

    def _release(self, channel: str) -> None:
        waiter = self._waiters.pop(channel, None)
        if waiter is not None:
            waiter.set()


__all__ = ["CONFIRM_TIMEOUT_S", "RoomRoutes", "is_routed"]
