"""The worker SDK's connection (:class:`workers.sdk.rpc.WorkerConnection`) over a scripted
Socket.IO client: acks, retries with backoff, refusals, dropped connections, ack timeouts."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import attrs
import pytest
import socketio

from workers.sdk.backoff import Backoff
from workers.sdk.errors import AckTimeout, AuthRefused, ConnectionLost
from workers.sdk.rpc import WorkerConnection
from workers.testing import wait_until

# -- the connection, over a scripted Socket.IO client ---------------------------------------


class FakeSocket:
    """Plays ``socketio.AsyncClient`` for :class:`WorkerConnection`: ``server`` decides."""

    def __init__(self, server: FakeSocketServer) -> None:
        self.server = server
        self.handlers: dict[str, Callable[..., Any]] = {}
        self.connected = False

    def on(self, event: str, handler: Callable[..., Any], namespace: str | None = None) -> None:
        self.handlers[event] = handler

    async def connect(self, url: str, **kwargs: Any) -> None:
        self.server.attempts += 1
        if self.server.refusal is not None:
            self.handlers["connect_error"]({"message": "no", "data": self.server.refusal})
            raise socketio.exceptions.ConnectionError("One or more namespaces failed to connect")
        if self.server.down:
            self.handlers["connect_error"]("Connection error")
            raise socketio.exceptions.ConnectionError("Connection error")
        self.connected = True
        self.server.sockets.append(self)

    async def emit(self, event: str, data: Any = None, *args: Any, **options: Any) -> None:
        """Acks every call with an echo of its payload, unless the event is silenced."""
        self.server.emitted.append(event)
        if event in self.server.silent:
            return
        callback = options["callback"]
        callback({"ok": True, "echo": data})

    async def disconnect(self) -> None:
        self.connected = False

    def drop(self) -> None:
        """The transport went away (the server stopped)."""
        self.connected = False
        self.handlers["disconnect"]("transport close")


@attrs.define
class FakeSocketServer:
    down: bool = False
    refusal: dict[str, str] | None = None
    silent: set[str] = attrs.field(factory=set)
    attempts: int = 0
    sockets: list[FakeSocket] = attrs.field(factory=list)
    emitted: list[str] = attrs.field(factory=list)

    def connection(self, **options: Any) -> WorkerConnection:
        return WorkerConnection(
            url="http://fake",
            token="t",
            backoff=Backoff(0.01, 0.02),
            client_factory=lambda: FakeSocket(self),
            **options,
        )


@contextlib.asynccontextmanager
async def connection_running(conn: WorkerConnection) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(conn.run())
    try:
        yield task
    finally:
        await conn.close()
        await asyncio.wait_for(task, 5)


async def test_calls_return_acks_once_connected() -> None:
    server = FakeSocketServer()
    conn = server.connection()
    with pytest.raises(ConnectionLost):
        await conn.call("claim", {})
    async with connection_running(conn):
        await conn.wait_connected()
        assert await conn.call("claim", {"types": ["a"]}) == {"ok": True, "echo": {"types": ["a"]}}


async def test_connecting_retries_with_backoff_until_the_server_is_up() -> None:
    server = FakeSocketServer(down=True)
    conn = server.connection()
    async with connection_running(conn):
        await wait_until(lambda: server.attempts >= 3, what="three attempts")
        server.down = False
        await conn.wait_connected()

    assert conn.sessions == 1


async def test_a_refused_token_is_fatal() -> None:
    server = FakeSocketServer(refusal={"code": "unauthorized", "message": "token expired"})
    conn = server.connection()

    with pytest.raises(AuthRefused, match="unauthorized: token expired"):
        await asyncio.wait_for(conn.run(), 5)
    assert server.attempts == 1


async def test_a_dropped_connection_fails_waiting_calls_fast_and_reconnects() -> None:
    server = FakeSocketServer(silent={"checkpoint"})
    conn = server.connection(ack_timeout_s=60)
    async with connection_running(conn):
        await conn.wait_connected()
        call = asyncio.create_task(conn.call("checkpoint", {}))
        await wait_until(lambda: "checkpoint" in server.emitted, what="sent")
        server.sockets[0].drop()
        with pytest.raises(ConnectionLost):
            await asyncio.wait_for(call, 5)
        await wait_until(lambda: conn.sessions == 2, what="reconnected")


async def test_an_ack_timeout_drops_the_connection_and_reconnects() -> None:
    server = FakeSocketServer(silent={"heartbeat"})
    conn = server.connection(ack_timeout_s=0.05)
    async with connection_running(conn):
        await conn.wait_connected()
        with pytest.raises(AckTimeout):
            await conn.call("heartbeat", {})
        await wait_until(lambda: conn.sessions == 2, what="reconnected")

    assert not server.sockets[0].connected
