"""The websocket reader's wait (server/realtime/reader_wait.py): Engine.IO's websocket handler
without a task and a timer per message, its timeout kept by one timer per socket."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from engineio import packet
from engineio.async_socket import AsyncSocket

from server.realtime.reader_wait import ReadDeadline, lean_websocket_handler
from server.realtime.send_queue import SendQueue
from server.realtime.sockets import SocketServer


class FakeReason:
    TRANSPORT_CLOSE = "transport close"


class FakeLogger:
    def __init__(self) -> None:
        self.exceptions: list[str] = []

    def info(self, *args: object) -> None:
        pass

    def exception(self, message: str) -> None:
        self.exceptions.append(message)


class FakeServer:
    reason = FakeReason

    def __init__(self, timeout_s: float) -> None:
        self.ping_interval = timeout_s / 2
        self.ping_timeout = timeout_s / 2
        self.max_http_buffer_size = 64
        self.logger = FakeLogger()


class FakeWebSocket:
    """Engine.IO's aiohttp wrapper as the handler uses it: ``wait`` gives the next incoming
    message (``None``: the client closed), ``send`` records what the writer sent."""

    def __init__(self) -> None:
        self.incoming: asyncio.Queue[Any] = asyncio.Queue()
        self.sent: list[str] = []
        self.closed = False

    async def wait(self) -> Any:
        message = await self.incoming.get()
        if isinstance(message, BaseException):
            raise message
        return message

    async def send(self, data: str) -> None:
        self.sent.append(data)

    async def close(self) -> None:
        self.closed = True


class FakeSocket:
    """What the handler reads and calls of an Engine.IO socket, over a real send queue (the
    writer is Engine.IO's poll on it)."""

    def __init__(self, *, timeout_s: float = 60.0, connected: bool = False) -> None:
        self.sid = "sid-1"
        self.server = FakeServer(timeout_s)
        self.connected = connected
        self.upgraded = False
        self.queue = SendQueue()
        self.received: list[Any] = []
        self.got_one = asyncio.Event()
        self.closed_with: str | None = None
        self.fail_next: BaseException | None = None

    async def poll(self) -> list[Any]:
        first = await self.queue.get()
        return [] if first is None else [first]

    async def receive(self, pkt: packet.Packet) -> None:
        if self.fail_next is not None:
            failure, self.fail_next = self.fail_next, None
            raise failure
        self.received.append((pkt.packet_type, pkt.data))
        self.got_one.set()

    async def close(self, *, wait: bool, abort: bool, reason: str) -> None:
        self.closed_with = reason


def handle(socket: FakeSocket, ws: FakeWebSocket) -> asyncio.Task[None]:
    return asyncio.create_task(lean_websocket_handler(socket, ws))


def message(text: str) -> str:
    encoded: str = packet.Packet(packet.MESSAGE, data=text).encode()
    return encoded


async def test_a_socket_server_makes_it_engineio_s_websocket_handler() -> None:
    SocketServer(max_message_bytes=1024, max_client_queue=16)
    assert AsyncSocket._websocket_handler is lean_websocket_handler


async def test_messages_are_received_in_order_and_the_writer_sends_until_the_client_closes() -> (
    None
):
    socket, ws = FakeSocket(), FakeWebSocket()
    running = handle(socket, ws)
    for text in ("a", "b", "c"):
        ws.incoming.put_nowait(message(text))
    socket.queue.put_nowait(packet.Packet(packet.MESSAGE, data="out"))
    ws.incoming.put_nowait(None)  # the client closed
    await asyncio.wait_for(running, 1.0)
    assert socket.connected
    assert socket.upgraded
    assert socket.received == [(packet.MESSAGE, "a"), (packet.MESSAGE, "b"), (packet.MESSAGE, "c")]
    assert ws.sent == [message("out")]
    assert ws.closed  # the writer ended and closed the websocket
    assert socket.closed_with == FakeReason.TRANSPORT_CLOSE


async def test_a_failed_read_or_a_too_large_message_ends_the_connection() -> None:
    for last in (OSError("gone"), message("x" * 100)):
        socket, ws = FakeSocket(), FakeWebSocket()
        running = handle(socket, ws)
        ws.incoming.put_nowait(message("a"))
        ws.incoming.put_nowait(last)
        ws.incoming.put_nowait(message("never read"))
        await asyncio.wait_for(running, 1.0)
        assert socket.received == [(packet.MESSAGE, "a")]
        assert ws.closed
        assert socket.closed_with == FakeReason.TRANSPORT_CLOSE


async def test_a_failing_receive_is_logged_and_the_connection_goes_on() -> None:
    socket, ws = FakeSocket(), FakeWebSocket()
    socket.fail_next = RuntimeError("boom")
    running = handle(socket, ws)
    for item in (message("a"), message("b"), None):
        ws.incoming.put_nowait(item)
    await asyncio.wait_for(running, 1.0)
    assert socket.received == [(packet.MESSAGE, "b")]
    assert socket.server.logger.exceptions == ["Unknown receive error"]


async def test_no_message_within_the_timeout_ends_the_connection_without_raising() -> None:
    socket, ws = FakeSocket(timeout_s=0.0), FakeWebSocket()
    await asyncio.wait_for(handle(socket, ws), 1.0)  # the deadline is due at once
    assert ws.closed
    assert socket.closed_with == FakeReason.TRANSPORT_CLOSE
    assert not asyncio.current_task().cancelling()  # type: ignore[union-attr]


async def test_a_cancelled_handler_ends_the_connection_and_raises() -> None:
    socket, ws = FakeSocket(), FakeWebSocket()
    running = handle(socket, ws)
    ws.incoming.put_nowait(message("a"))
    await asyncio.wait_for(socket.got_one.wait(), 1.0)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(running, 1.0)
    assert ws.closed
    assert socket.closed_with == FakeReason.TRANSPORT_CLOSE


async def test_a_cancel_from_outside_landing_with_the_deadline_is_raised(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The deadline cancels the reader and, in the same turn of the loop, the application's
    shutdown cancels it too: the handler ends the connection and raises (it used to take
    the shutdown's cancel for the deadline's and return normally)."""
    socket, ws = FakeSocket(timeout_s=0.0), FakeWebSocket()
    handlers: list[asyncio.Task[None]] = []
    ring = ReadDeadline.ring

    def ring_then_shutdown(deadline: ReadDeadline) -> None:
        ring(deadline)
        if deadline.expired:
            handlers[0].cancel()

    monkeypatch.setattr(ReadDeadline, "ring", ring_then_shutdown)
    handlers.append(handle(socket, ws))
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(handlers[0], 1.0)
    assert ws.closed
    assert socket.closed_with == FakeReason.TRANSPORT_CLOSE


async def test_an_upgrade_from_long_polling_goes_through_engineio_s_own_handler() -> None:
    socket, ws = FakeSocket(connected=True), FakeWebSocket()
    # Engine.IO's handshake wants a PING "probe" first; anything else fails the upgrade.
    ws.incoming.put_nowait(packet.Packet(packet.MESSAGE, data="not a probe").encode())
    await asyncio.wait_for(handle(socket, ws), 1.0)
    assert not socket.upgraded
    assert socket.received == []
    assert not ws.closed  # Engine.IO's failed upgrade leaves the long-polling socket alone


class Clock:
    """The loop's time moved by hand, so the deadline's decisions need no waiting."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.ahead = 0.0

    def __call__(self) -> float:
        return self.loop.time() + self.ahead


async def parked() -> None:
    await asyncio.Event().wait()


async def test_one_timer_stands_for_the_deadline_of_many_waits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop = asyncio.get_running_loop()
    timers: list[asyncio.TimerHandle] = []

    def call_at(when: float, callback: Any, *args: Any) -> asyncio.TimerHandle:
        timers.append(asyncio.TimerHandle(when, callback, args, loop))
        return timers[-1]

    monkeypatch.setattr(loop, "call_at", call_at)
    reader = asyncio.create_task(parked())
    deadline = ReadDeadline(60.0, reader)
    for _ in range(100):
        deadline.waiting()
        deadline.read()
    assert len(timers) == 1
    assert deadline.armed
    deadline.stop()
    assert not deadline.armed
    assert timers[0].cancelled()
    reader.cancel()


async def test_the_timer_arms_again_before_the_deadline_and_cancels_the_reader_after_it() -> None:
    clock = Clock()
    reader = asyncio.create_task(parked())
    deadline = ReadDeadline(60.0, reader, clock=clock)
    deadline.waiting()
    # It rang for an earlier wait; this one began later: not due yet, armed again.
    clock.ahead = 59.0
    deadline.ring()
    assert deadline.armed
    assert not deadline.expired
    # While a message is handled, no wait is timed: armed again for a timeout from now.
    deadline.read()
    clock.ahead = 500.0
    deadline.ring()
    assert deadline.armed
    assert not deadline.expired
    # A wait as long as the timeout: the reader is cancelled.
    deadline.waiting()
    clock.ahead = 560.0
    deadline.ring()
    assert deadline.expired
    assert not deadline.armed
    with pytest.raises(asyncio.CancelledError):
        await reader
