"""A bound on what Engine.IO queues for each client: a client that stops reading is dropped.

Engine.IO keeps one ``asyncio.Queue`` of outgoing packets per client and never bounds it:
an emit only appends to the queue, and the client's writer task takes packets off as fast
as the client reads them. A client that stops reading (a frozen tab, a stalled network)
therefore makes the server keep every event sent to it, without limit, and the memory
(and the garbage collector's work over it) is paid by everyone else.

:class:`SendQueueBound` gives each socket a queue that refuses packets past ``max_packets``
or past ``max_bytes`` of encoded packet data (``MAX_CLIENT_QUEUE`` and
``MAX_CLIENT_QUEUE_BYTES``: a few large events weigh as much as many small ones) and then
drops the client: its TCP transport is aborted (which also unblocks a writer stuck
on a full socket buffer), its Engine.IO session is closed without a goodbye, as
:meth:`server.realtime.sockets.SocketServer.disconnect_all` does, and what it had queued is
freed. The client sees a lost connection, reconnects and fills the gap by replay, which the
protocol already provides. Other clients are not affected: an emit never waits for a queue.

Only Engine.IO's own end marker (``None``) is always accepted, so a dropped client's writer
still ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from engineio.async_drivers.aiohttp import WebSocket

from server.realtime.send_queue import SendQueue

log = logging.getLogger(__name__)

#: Called with the Engine.IO socket that went over the bound, once per socket.
OverflowHandler = Callable[[Any], None]


def packet_bytes(item: Any) -> int:
    """The size of an Engine.IO packet's payload (UTF-8 bytes of its text, or its bytes)."""
    data = getattr(item, "data", None)
    if isinstance(data, str):
        return len(data) if data.isascii() else len(data.encode("utf-8", "surrogatepass"))
    if isinstance(data, (bytes, bytearray)):
        return len(data)
    return 0


class BoundedSendQueue(SendQueue):
    """An Engine.IO send queue that holds at most ``max_packets`` packets and
    ``max_bytes`` bytes of payload (0: no byte bound), lean while idle (:class:`SendQueue`).

    A packet past the bound is not queued; the first one tells ``on_overflow`` (with the
    queue), later ones are dropped silently, since the client is being disconnected.
    """

    __slots__ = ("_on_overflow", "max_bytes", "max_packets", "overflowed", "queued_bytes")

    def __init__(
        self,
        max_packets: int,
        on_overflow: Callable[[BoundedSendQueue], None],
        max_bytes: int = 0,
    ) -> None:
        super().__init__()
        self.max_packets = max_packets
        self.max_bytes = max_bytes
        self.queued_bytes = 0
        self.overflowed = False
        self._on_overflow = on_overflow

    def _too_much(self, item: Any) -> bool:
        if self.overflowed or self.qsize() >= self.max_packets:
            return True
        return self.max_bytes > 0 and self.queued_bytes + packet_bytes(item) > self.max_bytes

    def put_nowait(self, item: Any) -> None:
        # ``put`` calls this too (the queue itself is unbounded, so ``put`` never waits).
        if item is not None and self._too_much(item):
            if not self.overflowed:
                self.overflowed = True
                self._on_overflow(self)
            return
        super().put_nowait(item)

    def _put(self, item: Any) -> None:
        self.queued_bytes += packet_bytes(item)
        super()._put(item)

    def _get(self) -> Any:
        item = super()._get()
        self.queued_bytes -= packet_bytes(item)
        return item

    def discard(self) -> int:
        """Drop every queued packet (marking each done, as ``join`` expects); how many."""
        dropped = 0
        while True:
            try:
                self.get_nowait()
            except asyncio.QueueEmpty:
                return dropped
            self.task_done()
            dropped += 1


class SendQueueBound:
    """Installs bounded send queues on an Engine.IO server and drops clients that fill them.

    ``on_drop`` is told of each dropped client (for metrics) after it is logged.
    """

    def __init__(
        self, eio: Any, *, max_packets: int, on_drop: Callable[[], None], max_bytes: int = 0
    ) -> None:
        if max_packets < 1:
            raise ValueError("max_packets must be at least 1")
        self._eio = eio
        self.max_packets = max_packets
        self.max_bytes = max_bytes
        self._on_drop = on_drop
        self.dropped = 0
        # One bound method for every queue (each ``self._overflowed`` would be a new one).
        self._tell_overflow: Callable[[BoundedSendQueue], None] = self._overflowed
        eio.create_queue = self._create_queue
        # The websocket wrapper of each connection is remembered on its socket, so that a
        # dropped client's TCP transport can be aborted. A per-server copy of the table:
        # the module's dict is shared by every Engine.IO server of the process.
        eio._async = {**eio._async, "websocket": _tracked_websocket_class(eio._async["websocket"])}

    def _create_queue(self, *args: Any, **kwargs: Any) -> BoundedSendQueue:
        return BoundedSendQueue(self.max_packets, self._tell_overflow, self.max_bytes)

    def _overflowed(self, queue: BoundedSendQueue) -> None:
        socket = next((s for s in self._eio.sockets.values() if s.queue is queue), None)
        if socket is None:  # not registered yet, or already gone: nothing to disconnect
            queue.discard()
            return
        self.dropped += 1
        log.warning(
            "client %s stopped reading: %d packets (%d bytes) queued; disconnecting it "
            "(it will resync)",
            socket.sid,
            queue.qsize(),
            queue.queued_bytes,
        )
        self._on_drop()
        self._eio.start_background_task(self._drop, socket, queue)

    async def _drop(self, socket: Any, queue: BoundedSendQueue) -> None:
        _abort_transport(socket)
        with contextlib.suppress(Exception):
            await socket.close(wait=False, abort=True, reason=self._eio.reason.SERVER_DISCONNECT)
        queue.discard()
        queue.put_nowait(None)  # ends the writer (and a long poll) from the server's side


def _abort_transport(socket: Any) -> None:
    """Abort the TCP connection of a websocket client: its writer, maybe blocked on a full
    socket buffer, fails at once, and the kernel frees what was buffered."""
    ws = getattr(socket, _WEBSOCKET_ATTRIBUTE, None)
    request = getattr(ws, "environ", {}).get("aiohttp.request") if ws is not None else None
    transport = getattr(request, "transport", None)
    if transport is not None:
        transport.abort()


_WEBSOCKET_ATTRIBUTE = "jobspine_websocket"


def _tracked_websocket_class(base: type[WebSocket]) -> type[WebSocket]:
    class TrackedWebSocket(base):  # type: ignore[misc]
        """Engine.IO's aiohttp websocket wrapper, remembered by the socket it serves
        (``handler`` is that socket's bound ``_websocket_handler``)."""

        def __init__(self, handler: Any, server: Any) -> None:
            super().__init__(handler, server)
            owner = getattr(handler, "__self__", None)
            if owner is not None:
                setattr(owner, _WEBSOCKET_ATTRIBUTE, self)

    return TrackedWebSocket


__all__ = ["BoundedSendQueue", "SendQueueBound", "packet_bytes"]
