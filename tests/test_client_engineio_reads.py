"""The sessions' Engine.IO client read loop (jobspine_client/engineio_reads.py): each websocket
message read with aiohttp's own timeout, in the loop's task, handed on as Engine.IO does."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from engineio import packet

from jobspine_client.engineio_reads import LeanEngineIOClient
from jobspine_client.socket_session import default_socket


class FakeClientWebSocket:
    """aiohttp's client websocket as the read loop uses it: ``receive`` gives the next of
    ``messages`` (an exception is raised) and records the timeout it was given."""

    def __init__(self, messages: list[Any]) -> None:
        self.messages = list(messages)
        self.timeouts: list[float | None] = []

    async def receive(self, timeout: float | None = None) -> aiohttp.WSMessage:  # noqa: ASYNC109
        self.timeouts.append(timeout)
        item = self.messages.pop(0)
        if isinstance(item, BaseException):
            raise item
        if isinstance(item, aiohttp.WSMessage):
            return item
        return aiohttp.WSMessage(aiohttp.WSMsgType.TEXT, item, None)


def text(data: str) -> str:
    encoded: str = packet.Packet(packet.MESSAGE, data=data).encode()
    return encoded


async def read_loop(
    messages: list[Any], handed_on: int
) -> tuple[LeanEngineIOClient, list[Any], list[str]]:
    """Run the read loop of a connected client over ``messages``: what it handed on as
    messages (once ``handed_on`` were), and the disconnect reasons it reported."""
    client = LeanEngineIOClient()
    received: list[Any] = []
    reasons: list[str] = []
    handled = asyncio.Event()

    async def on_message(data: Any) -> None:
        received.append(data)
        handled.set()

    async def on_disconnect(reason: str) -> None:
        reasons.append(reason)

    client.on("message", on_message)
    client.on("disconnect", on_disconnect)
    client.state = "connected"
    client.ping_interval, client.ping_timeout = 25.0, 20.0
    client.ws = FakeClientWebSocket(messages)
    client.write_loop_task = asyncio.get_running_loop().create_future()
    client.write_loop_task.set_result(None)  # the writer ended once the loop queued None
    await asyncio.wait_for(client._read_loop_websocket(), 1.0)
    while len(received) < handed_on:  # each message's handler is a task (Engine.IO's)
        handled.clear()
        await asyncio.wait_for(handled.wait(), 1.0)
    return client, received, reasons


async def test_the_sessions_socket_reads_through_the_lean_client() -> None:
    assert isinstance(default_socket().eio, LeanEngineIOClient)


async def test_messages_are_handed_on_in_order_until_the_server_closes() -> None:
    closing = aiohttp.WSMessage(aiohttp.WSMsgType.CLOSE, 1000, "")
    client, received, reasons = await read_loop([text("a"), text("b"), closing], 2)
    assert received == ["a", "b"]
    assert client.ws.timeouts == [45.0, 45.0, 45.0]  # ping_interval + ping_timeout, each read
    assert reasons == [client.reason.TRANSPORT_ERROR]
    assert client.state == "disconnected"
    assert client.queue.empty()  # the None that ends the writer was put (and reset)


async def test_a_read_that_times_out_or_fails_ends_the_session() -> None:
    for failure in (TimeoutError(), aiohttp.ServerDisconnectedError(), RuntimeError("x")):
        client, received, reasons = await read_loop([text("a"), failure, text("never")], 1)
        assert received == ["a"]
        assert reasons == [client.reason.TRANSPORT_ERROR]
        assert client.state == "disconnected"
