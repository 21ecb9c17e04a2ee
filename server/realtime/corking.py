"""The websocket frames written to one client in one turn of the loop go out in one write.

python-engineio's writer task takes every packet queued for a client and sends each with
its own ``send_str``; aiohttp frames it and writes it to the TCP transport, and both
asyncio's and uvloop's transports write at once: one ``send()`` system call per Engine.IO
packet. Under load a writer finds several packets queued (acks to a worker, events to a
watching client), and those system calls were the largest share of the web process's
samples (docs/performance.md, "Where the time goes").

:class:`CorkedTransport` stands between aiohttp's websocket writer and the connection's
transport. Data frames are collected and handed to the transport together at the loop's
next turn (one ``call_soon`` per batch); a control frame (close, ping, pong) first writes
what is pending and is then written at once, so a close frame is never left behind a
transport that is closed right after it. Every frame goes through the one list, so the
order of frames on the wire is the order of the writes. Where asyncio's ``writelines`` does
not pause the protocol (:data:`WRITELINES_PAUSES`), the batch is joined and written with one
``write`` instead, so that a client that stops reading still makes aiohttp's writer wait.

The cork is installed by :func:`corked_websocket_class`, Engine.IO's aiohttp websocket
wrapper whose first send puts it under the response's writer (aiohttp's private
``_writer``: ``tests/test_corking.py`` fails if a live connection's writes stop going
through the cork).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterable
from typing import Any

from aiohttp import web
from engineio.async_drivers.aiohttp import WebSocket

#: Opcodes from 8 up are control frames (RFC 6455, 5.5); the low 4 bits of a header's
#: first byte.
_CONTROL_OPCODE = 8


def writelines_pauses(version: tuple[int, ...]) -> bool:
    """Whether asyncio's socket transports of Python ``version`` pause their protocol from
    ``writelines`` as they do from ``write``. 3.12.0-3.12.8 and 3.13.0-3.13.1 do not
    (CVE-2024-12254): their buffer grows without ``pause_writing``, so aiohttp's writer never
    waits for a client that stopped reading, Engine.IO's writer keeps emptying the client's
    bounded send queue into that buffer, and ``MAX_CLIENT_QUEUE(_BYTES)`` never sees it."""
    return not ((3, 12) <= version < (3, 12, 9) or (3, 13) <= version < (3, 13, 2))


#: Whether this interpreter's ``writelines`` keeps flow control (:func:`writelines_pauses`);
#: where it does not, a batch is joined and written with one ``write`` (one system call too).
WRITELINES_PAUSES = writelines_pauses(sys.version_info[:3])


def _is_control_frame(data: bytes | bytearray | memoryview) -> bool:
    """Whether ``data`` may start a control frame. A payload written apart from its header
    (aiohttp does so past 16 KiB) may look like one too: it is then written at once, after
    what is pending, which keeps the order."""
    return len(data) > 0 and data[0] & 0x0F >= _CONTROL_OPCODE


class CorkedTransport:
    """A transport face for aiohttp's ``WebSocketWriter``: data frames of one turn of the
    loop are written with one ``writelines`` at the next; the rest is the transport's."""

    __slots__ = ("_loop", "_pending", "transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self.transport = transport
        self._loop = loop
        #: The frames of this turn; ``None`` between turns (no list per idle client).
        self._pending: list[bytes | bytearray | memoryview] | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if _is_control_frame(data):
            self.flush()
            self.transport.write(data)
            return
        if self._pending is None:
            self._pending = [data]
            self._loop.call_soon(self.flush)
        else:
            self._pending.append(data)

    def writelines(self, lines: Iterable[bytes | bytearray | memoryview]) -> None:
        """Each piece as :meth:`write` takes it, so a writer that mixes ``write`` and
        ``writelines`` keeps the order of its frames (aiohttp 3.14 only calls ``write``)."""
        for data in lines:
            self.write(data)

    def flush(self) -> None:
        """Write what is pending (nothing once the transport is closing)."""
        pending, self._pending = self._pending, None
        if pending is None:
            return
        if self.transport.is_closing():
            return
        if len(pending) == 1:
            self.transport.write(pending[0])
        elif WRITELINES_PAUSES:
            self.transport.writelines(pending)
        else:
            self.transport.write(b"".join(pending))

    def is_closing(self) -> bool:
        return self.transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.transport.get_extra_info(name, default)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


def cork(response: web.WebSocketResponse) -> bool:
    """Put a :class:`CorkedTransport` under the writer of a prepared websocket response;
    whether its writes are corked (``False`` before ``prepare``)."""
    writer = response._writer
    if writer is None:
        return False
    if not isinstance(writer.transport, CorkedTransport):
        loop = asyncio.get_running_loop()
        writer.transport = CorkedTransport(writer.transport, loop)  # type: ignore[assignment]
    return True


def corked_websocket_class(base: type[WebSocket]) -> type[WebSocket]:
    """Engine.IO's aiohttp websocket wrapper ``base``, its writes corked from the first
    packet it sends (the response is prepared by then), and text sent without looking up,
    per packet, whether aiohttp's send is a coroutine function (it is)."""

    class CorkedWebSocket(base):  # type: ignore[misc]
        corked = False

        async def send(self, message: str | bytes) -> None:
            sock: web.WebSocketResponse = self._sock
            if not self.corked:
                self.corked = cork(sock)
            if isinstance(message, bytes):
                await sock.send_bytes(message)
            else:
                await sock.send_str(message)

    return CorkedWebSocket


def install_corked_websockets(eio: Any) -> None:
    """Make the Engine.IO server ``eio`` serve websockets with corked writes (a per-server
    copy of the driver table: the module's dict is shared by every server of the process)."""
    eio._async = {**eio._async, "websocket": corked_websocket_class(eio._async["websocket"])}


__all__ = [
    "WRITELINES_PAUSES",
    "CorkedTransport",
    "cork",
    "corked_websocket_class",
    "install_corked_websockets",
    "writelines_pauses",
]
