"""A minimal Socket.IO v5 / Engine.IO v4 client over one aiohttp websocket.

Why not ``socketio.AsyncClient``: the load generator must cost far less than the server it
measures, and thousands of idle clients must fit in one process. This speaks just what the
bench needs: the websocket transport, one namespace per connection, calls with an ack,
events from the server, and answers to the server's pings. Text packets only.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import Callable
from typing import Any

import aiohttp

#: ``(event name, raw text of the packet)``; parse only what you need, when you need it.
RawListener = Callable[[str], None]


class HandshakeRefused(Exception):
    """The server refused the namespace (a CONNECT_ERROR packet)."""


def _prefix(namespace: str) -> str:
    return "" if namespace == "/" else f"{namespace},"


class WireClient:
    """One connected socket on one namespace."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, namespace: str) -> None:
        self._ws = ws
        self._namespace = namespace
        self._prefix = _prefix(namespace)
        self._ids = itertools.count()
        self._acks: dict[int, asyncio.Future[Any]] = {}
        self._reader: asyncio.Task[None] | None = None
        #: Called with the raw text of every event packet the server pushes.
        self.on_event: RawListener | None = None

    @classmethod
    async def connect(
        cls, http: aiohttp.ClientSession, url: str, namespace: str, auth: dict[str, Any] | None
    ) -> WireClient:
        ws_url = url.replace("http://", "ws://", 1) + "/socket.io/?EIO=4&transport=websocket"
        ws = await http.ws_connect(ws_url, autoping=True, max_msg_size=0)
        try:
            opening = await ws.receive_str()
            if not opening.startswith("0"):
                raise HandshakeRefused(f"unexpected Engine.IO open packet {opening[:80]!r}")
            payload = "" if auth is None else json.dumps(auth)
            await ws.send_str(f"40{_prefix(namespace)}{payload}")
            while True:
                text = await ws.receive_str()
                if text == "2":
                    await ws.send_str("3")
                    continue
                break
            head = f"4{{}}{_prefix(namespace)}"
            if text.startswith(head.format("4")):
                raise HandshakeRefused(text[len(head.format("4")) :])
            if not text.startswith(head.format("0")):
                raise HandshakeRefused(f"unexpected answer to CONNECT {text[:80]!r}")
        except BaseException:
            await ws.close()
            raise
        client = cls(ws, namespace)
        client._reader = asyncio.create_task(client._read(), name="wire-reader")
        return client

    async def call(self, event: str, payload: Any) -> Any:
        """Emit ``event`` with ``payload`` and return the first argument of the ack."""
        ack_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._acks[ack_id] = future
        data = json.dumps([event, payload], separators=(",", ":"))
        try:
            await self._ws.send_str(f"42{self._prefix}{ack_id}{data}")
            return await future
        finally:
            self._acks.pop(ack_id, None)

    async def _read(self) -> None:
        ws, ack_head, event_head = self._ws, f"43{self._prefix}", f"42{self._prefix}"
        try:
            async for message in ws:
                if message.type is not aiohttp.WSMsgType.TEXT:
                    break
                text: str = message.data
                if text.startswith(event_head):
                    if self.on_event is not None:
                        self.on_event(text[len(event_head) :])
                elif text.startswith(ack_head):
                    body = text[len(ack_head) :]
                    bracket = body.index("[")
                    future = self._acks.get(int(body[:bracket]))
                    if future is not None and not future.done():
                        future.set_result(json.loads(body[bracket:])[0])
                elif text == "2":
                    await ws.send_str("3")
        finally:
            error = ConnectionError("the socket closed")
            for future in self._acks.values():
                if not future.done():
                    future.set_exception(error)

    @property
    def closed(self) -> bool:
        return self._ws.closed

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader


def event_name(raw: str) -> str:
    """The event name of a raw event packet body (``["name", …]``) without parsing the rest."""
    end = raw.index('"', 2)
    return raw[2:end]


def event_data(raw: str) -> Any:
    """The first argument of a raw event packet body."""
    return json.loads(raw)[1]


def new_session() -> aiohttp.ClientSession:
    """A session without a connection limit: every websocket holds its connection."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, force_close=False))


__all__ = ["HandshakeRefused", "WireClient", "event_data", "event_name", "new_session"]
