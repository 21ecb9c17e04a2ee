"""A websocket client's Engine.IO reader waits for its next message without a task and a timer
per message.

Engine.IO's websocket handler (``AsyncSocket._websocket_handler``) reads each message with
``asyncio.wait_for(asyncio.ensure_future(ws.wait()), ping_interval + ping_timeout)``: per
message a task (registered in asyncio's task set), a future, a loop timer, and three steps of
the loop before the message is handled (the read task's, its done callback's, the reader's).
Every worker call and every client call is one message, so that was paid about 27 times per
job of the peer workload (docs/performance.md, "The memory store's peer workload"), and each
call waited those extra turns behind whatever else the loop had ready.

:func:`lean_websocket_handler` is that handler for a socket that starts on the websocket
(Engine.IO's ``transports=["websocket"]``, what the SDKs use), reading with ``ws.wait()``
directly; :class:`ReadDeadline` keeps the same timeout with one timer per socket, armed again
only when it rings while a message came since (about one timer per timeout period), and
cancels the reading task once a wait lasted the whole timeout, as ``wait_for`` did. The rest
is Engine.IO's: the writer task, the size check, what a message or a failure does, and the
cleanup (end the writer, wait for it, close the socket), which a cancellation of the handler
also gets before it is raised (Engine.IO's loop swallowed it). A socket that upgrades from long
polling goes through Engine.IO's own handler. :func:`install_lean_readers` puts it into
``AsyncSocket``'s class, once per process (as :mod:`server.realtime.writer_wait` does).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from engineio import exceptions, packet
from engineio.async_socket import AsyncSocket

#: Engine.IO's own handler, for a socket upgrading from long polling.
ENGINEIO_WEBSOCKET_HANDLER = AsyncSocket._websocket_handler


class ReadDeadline:
    """The reader's timeout: ``task`` is cancelled once one wait (between :meth:`waiting`
    and :meth:`read`) lasted ``timeout_s``; one loop timer stands for every wait's deadline."""

    __slots__ = ("_clock", "_handle", "_loop", "_task", "_timeout_s", "_wait_started", "expired")

    def __init__(
        self, timeout_s: float, task: asyncio.Task[Any], clock: Callable[[], float] | None = None
    ) -> None:
        self._loop = task.get_loop()
        #: The loop's clock (a test's own clock moves the deadline; the timer stays the loop's).
        self._clock = clock or self._loop.time
        self._task = task
        self._timeout_s = timeout_s
        #: When the current wait started; ``None`` while the reader handles a message.
        self._wait_started: float | None = None
        self._handle: asyncio.TimerHandle | None = None
        #: Whether the deadline cancelled the task (the reader then ends as on a timeout).
        self.expired = False

    def waiting(self) -> None:
        """The reader waits for its next message from now."""
        now = self._clock()
        self._wait_started = now
        if self._handle is None:
            self._handle = self._loop.call_at(now + self._timeout_s, self.ring)

    def read(self) -> None:
        """A message came (or the wait ended otherwise)."""
        self._wait_started = None

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def ring(self) -> None:
        """The timer's callback: the current wait's deadline passed (the task is cancelled),
        or the timer is armed again for when it will (the reader waited again since it was
        armed, or is handling a message: a timeout from now)."""
        self._handle = None
        now, started = self._clock(), self._wait_started
        due = (now if started is None else started) + self._timeout_s
        if started is None or due > now:
            self._handle = self._loop.call_at(due, self.ring)
            return
        self.expired = True
        self._task.cancel()

    @property
    def armed(self) -> bool:
        """Whether the timer is armed."""
        return self._handle is not None


async def lean_websocket_handler(socket: AsyncSocket, ws: Any) -> None:
    """Engine.IO's websocket handler, its reads without a task and a timer each."""
    if socket.connected:  # an upgrade from long polling: Engine.IO's own handshake
        await ENGINEIO_WEBSOCKET_HANDLER(socket, ws)
        return
    server = socket.server
    socket.connected = True
    socket.upgraded = True

    async def writer() -> None:  # Engine.IO's
        while True:
            try:
                packets = await socket.poll()
            except exceptions.QueueEmpty:
                break
            if not packets:  # the end marker: the connection is closing
                break
            try:
                for pkt in packets:
                    await ws.send(pkt.encode())
            except Exception:
                break
        await ws.close()

    writer_task = asyncio.ensure_future(writer())
    server.logger.info("%s: Upgrade to websocket successful", socket.sid)
    task = asyncio.current_task()
    assert task is not None
    deadline = ReadDeadline(server.ping_interval + server.ping_timeout, task)
    try:
        await _read_messages(socket, ws, deadline, task)
    except asyncio.CancelledError:
        await _end(socket, writer_task)  # the connection ends as on any other way out
        raise
    finally:
        deadline.stop()
    await _end(socket, writer_task)


async def _end(socket: AsyncSocket, writer_task: asyncio.Future[None]) -> None:
    """Engine.IO's end of a websocket: the writer ends, then the socket closes."""
    await socket.queue.put(None)  # unlock the writer task so it can exit
    await writer_task
    await socket.close(wait=False, abort=True, reason=socket.server.reason.TRANSPORT_CLOSE)


async def _read_messages(
    socket: AsyncSocket, ws: Any, deadline: ReadDeadline, task: asyncio.Task[Any]
) -> None:
    """Hand each message to the socket until the connection ends, a read fails, a message is
    too large or no message came within the deadline (each ends the loop, as in Engine.IO's
    handler). A cancellation of the reading task from elsewhere is raised (after the
    caller's cleanup). ``task``: the reading task, the one ``deadline`` cancels."""
    server = socket.server
    while True:
        deadline.waiting()
        try:
            data = await ws.wait()
        except asyncio.CancelledError:
            # The deadline's own cancel ends the loop as a timeout does; any other cancel
            # (alone, or landing in the same turn as the deadline's) is raised.
            if not deadline.expired or task.uncancel() > 0:
                raise
            break
        except Exception:
            break
        finally:
            deadline.read()
        if data is None:  # connection closed by the client
            break
        if data and len(data) > server.max_http_buffer_size:
            break
        try:
            await socket.receive(packet.Packet(encoded_packet=data))
        except exceptions.UnknownPacketError:
            pass
        except exceptions.SocketIsClosedError:
            server.logger.info("Receive error -- socket is closed")
            break
        except Exception:
            # an unexpected failure is logged and the connection goes on (Engine.IO's rule)
            server.logger.exception("Unknown receive error")


def install_lean_readers() -> None:
    """Make :func:`lean_websocket_handler` Engine.IO's websocket handler (once per process)."""
    AsyncSocket._websocket_handler = lean_websocket_handler


__all__ = [
    "ENGINEIO_WEBSOCKET_HANDLER",
    "ReadDeadline",
    "install_lean_readers",
    "lean_websocket_handler",
]
