"""A Socket.IO client that can stop reading: a raw websocket over a small TCP window.

Real clients (python-socketio's, aiohttp's) keep reading their socket in the background, so
they cannot play a client whose tab froze. This one speaks just enough of RFC 6455 and
Engine.IO v4 / Socket.IO v5 to connect to one namespace and make calls; between
:meth:`Laggard.read_packet` calls nothing reads the socket, and the receive buffer is set
small before connecting, so once it is full the server's writes to this client stall: what
the server sends next waits in its per-client queue.

Part of the harness the tests and the benches share (pytest-free): used by
tests/test_backpressure.py and ``scripts/bench backpressure``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import struct
from typing import Any
from urllib.parse import urlsplit

#: Receive buffer asked for before connecting (the kernel doubles it); small, so the
#: server's writes stall after little data when this client stops reading.
RECEIVE_BUFFER_BYTES = 4096

_TEXT, _CLOSE, _PING, _PONG = 0x1, 0x8, 0x9, 0xA


class ConnectionLost(Exception):
    """The server closed or reset the connection."""


class Laggard:
    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, namespace: str
    ) -> None:
        self._reader, self._writer = reader, writer
        self._prefix = "" if namespace == "/" else f"{namespace},"
        self._ids = 0

    @classmethod
    async def connect(cls, url: str, namespace: str, auth: dict[str, Any]) -> Laggard:
        """Connected to ``namespace`` (the caller bounds the wait)."""
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_connect(sock, (host, port))
        # A small stream limit too: asyncio reads ahead up to twice the limit by itself.
        reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 16)
        client = cls(reader, writer, namespace)
        await client._handshake(host, port, auth)
        return client

    async def _handshake(self, host: str, port: int, auth: dict[str, Any]) -> None:
        key = base64.b64encode(os.urandom(16)).decode()
        self._writer.write(
            (
                "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
                f"Host: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = await self._reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionLost(f"websocket upgrade refused: {head[:80]!r}")
        opening = await self.read_packet()
        if not opening.startswith("0"):
            raise ConnectionLost(f"unexpected Engine.IO open packet {opening[:80]!r}")
        self.send_packet(f"40{self._prefix}{json.dumps(auth)}")
        connected = await self.read_packet()
        if not connected.startswith(f"40{self._prefix}"):
            raise ConnectionLost(f"namespace refused: {connected[:200]!r}")

    def send_packet(self, text: str) -> None:
        """One masked text frame, as clients must send."""
        payload = text.encode()
        mask = os.urandom(4)
        length = len(payload)
        if length < 126:
            header = struct.pack("!BB", 0x80 | _TEXT, 0x80 | length)
        elif length < 1 << 16:
            header = struct.pack("!BBH", 0x80 | _TEXT, 0x80 | 126, length)
        else:
            header = struct.pack("!BBQ", 0x80 | _TEXT, 0x80 | 127, length)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self._writer.write(header + mask + masked)

    async def read_packet(self) -> str:
        """The next Engine.IO text packet; answers pings on the way."""
        while True:
            try:
                opcode, payload = await self._read_frame()
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                raise ConnectionLost(str(exc)) from exc
            if opcode == _CLOSE:
                raise ConnectionLost("close frame")
            if opcode == _PING:
                continue
            text = payload.decode()
            if text == "2":  # Engine.IO ping
                self.send_packet("3")
                continue
            return text

    async def _read_frame(self) -> tuple[int, bytes]:
        first, second = await self._reader.readexactly(2)
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", await self._reader.readexactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", await self._reader.readexactly(8))
        return first & 0x0F, await self._reader.readexactly(length)

    async def call(self, event: str, data: Any) -> Any:
        """Emit with an ack and read until the ack (events in between are skipped)."""
        self._ids += 1
        ack_id = self._ids
        self.send_packet(f"42{self._prefix}{ack_id}{json.dumps([event, data])}")
        expected = f"43{self._prefix}{ack_id}"
        while True:
            packet = await self.read_packet()
            if packet.startswith(expected):
                return json.loads(packet[len(expected) :])[0]

    async def closed_by_server(self) -> bool:
        """Read (and drop) everything until the server ends the connection (EOF or reset);
        the caller bounds the wait."""
        try:
            while await self._reader.read(1 << 16):
                pass
        except ConnectionError:
            pass
        return True

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            self._writer.close()
            await self._writer.wait_closed()


__all__ = ["ConnectionLost", "Laggard"]
