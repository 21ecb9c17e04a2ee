"""Engine.IO's pings for every socket on one loop timer, instead of a task per socket.

After each pong Engine.IO starts a background task per socket (``AsyncSocket._send_ping``)
that sleeps ``ping_interval`` and then sends a PING. An idle socket therefore always holds
a task, its coroutine, a future and a timer, and on uvloop a libuv timer more: about 0.7 KB
on asyncio's loop and 1.5 KB on uvloop (docs/performance.md, "Memory per idle
connection").

:class:`PingSchedule` takes those calls (:meth:`takes`) and keeps the sockets in a FIFO
instead: every socket waits the same interval, so they come due in the order they were
scheduled, and one loop timer waits for the first. When a socket is due and still open, a
short task sends its PING through the socket's own ``send``, as Engine.IO's task did.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Callable, Coroutine
from typing import Any

from engineio import exceptions, packet
from engineio.async_socket import AsyncSocket

Spawn = Callable[[Callable[..., Coroutine[Any, Any, None]], Any], Any]

_SEND_PING = AsyncSocket._send_ping
#: A socket due within this is due now: uvloop's timers count milliseconds and may fire
#: up to one early, which would otherwise re-arm the alarm again and again until then.
EARLY_S = 0.001


class PingSchedule:
    """The next PING of each socket of the Engine.IO server ``eio``; ``spawn`` starts the
    task that sends one (the server's tracked ``start_background_task``)."""

    def __init__(self, eio: Any, spawn: Spawn) -> None:
        self._eio = eio
        self._spawn = spawn
        self._due: collections.deque[tuple[float, Any]] = collections.deque()
        self._alarm: asyncio.TimerHandle | None = None
        self._closed = False

    @staticmethod
    def takes(target: object) -> bool:
        """Whether ``target`` (given to ``start_background_task``) is a socket's ping wait."""
        return getattr(target, "__func__", None) is _SEND_PING

    def schedule(self, ping_wait: Any) -> None:
        """In place of running ``ping_wait`` (a socket's bound ``_send_ping``) as a task;
        nothing once closed."""
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        self._due.append((loop.time() + self._eio.ping_interval, ping_wait.__self__))
        if self._alarm is None:
            self._arm(loop)

    def __len__(self) -> int:
        return len(self._due)

    def close(self) -> None:
        """No more pings (at shutdown)."""
        self._closed = True
        if self._alarm is not None:
            self._alarm.cancel()
            self._alarm = None
        self._due.clear()

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        self._alarm = loop.call_at(self._due[0][0], self._ring)

    def _ring(self) -> None:
        self._alarm = None
        loop = asyncio.get_running_loop()
        now, due = loop.time() + EARLY_S, self._due
        while due and due[0][0] <= now:
            _, socket = due.popleft()
            if not socket.closing and not socket.closed:
                socket.last_ping = time.time()
                self._spawn(_send_ping, socket)
        if due:
            self._arm(loop)


async def _send_ping(socket: Any) -> None:
    with contextlib.suppress(exceptions.SocketIsClosedError):
        await socket.send(packet.Packet(packet.PING))


__all__ = ["PingSchedule"]
