"""The websocket writer's wait (server/realtime/writer_wait.py) and the send queue's timed get
it stands on: Engine.IO's poll, without a task and a timer per wake-up."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from engineio import exceptions
from engineio.async_socket import AsyncSocket

from server.realtime.send_queue import SendQueue
from server.realtime.sockets import SocketServer
from server.realtime.writer_wait import lean_poll


class FakeServer:
    def __init__(self, ping_interval: float = 25.0, ping_timeout: float = 20.0) -> None:
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout


class FakeSocket:
    """What lean_poll reads of an Engine.IO socket."""

    def __init__(self, queue: Any, *, upgraded: bool = True, timeout_s: float = 45.0) -> None:
        self.queue = queue
        self.upgraded = upgraded
        self.server = FakeServer(timeout_s / 2, timeout_s / 2)


def poll(socket: Any) -> Any:
    return lean_poll(socket)


async def test_a_socket_server_makes_lean_poll_engineio_s_poll() -> None:
    SocketServer(max_message_bytes=1024, max_client_queue=16)
    assert AsyncSocket.poll is lean_poll


async def test_poll_returns_what_is_queued_up_to_the_end_marker_then_nothing() -> None:
    queue = SendQueue()
    socket = FakeSocket(queue)
    waiting = asyncio.create_task(poll(socket))
    await asyncio.sleep(0)
    assert not waiting.done()
    for packet in ("a", "b", None, "late"):
        queue.put_nowait(packet)
    assert await asyncio.wait_for(waiting, 1.0) == ["a", "b"]
    # As Engine.IO's poll: the end marker goes back behind what came after it, then ends it.
    assert await asyncio.wait_for(poll(socket), 1.0) == ["late"]
    assert await asyncio.wait_for(poll(socket), 1.0) == []
    await asyncio.wait_for(queue.join(), 1.0)  # every packet taken was marked done


async def test_poll_without_a_packet_in_time_or_cancelled_is_queue_empty() -> None:
    with pytest.raises(exceptions.QueueEmpty):
        await poll(FakeSocket(SendQueue(), timeout_s=0.01))
    waiting = asyncio.create_task(poll(FakeSocket(SendQueue())))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(exceptions.QueueEmpty):
        await waiting


async def test_a_polling_client_or_another_queue_gets_engineio_s_own_poll() -> None:
    for socket in (FakeSocket(SendQueue(), upgraded=False), FakeSocket(asyncio.Queue())):
        socket.queue.put_nowait("a")
        socket.queue.put_nowait("b")
        assert await asyncio.wait_for(poll(socket), 1.0) == ["a", "b"]


async def test_get_within_takes_a_queued_item_at_once_and_arms_no_timer() -> None:
    queue = SendQueue()
    queue.put_nowait("a")
    assert await queue.get_within(0.001) == "a"
    assert queue._alarm is None


async def test_get_within_times_out_takes_nothing_and_the_next_wait_gets_the_item() -> None:
    queue = SendQueue()
    with pytest.raises(TimeoutError):
        await queue.get_within(0.01)
    second = asyncio.create_task(queue.get_within(60.0))
    await asyncio.sleep(0)
    queue.put_nowait("x")
    assert await asyncio.wait_for(second, 1.0) == "x"


async def test_one_timer_stands_for_the_deadline_of_many_waits() -> None:
    queue = SendQueue()
    for packet in ("a", "b", "c"):
        waiting = asyncio.create_task(queue.get_within(60.0))
        await asyncio.sleep(0)
        if packet == "a":
            alarm = queue._alarm
            assert alarm is not None
        assert queue._alarm is alarm  # not armed again for the next waits
        queue.put_nowait(packet)
        assert await asyncio.wait_for(waiting, 1.0) == packet
    queue.put_nowait(None)
    assert await queue.get_within(60.0) is None
    assert queue._alarm is None  # the end marker disarms it
    assert alarm is not None
    assert alarm.cancelled()


async def test_the_timer_ringing_before_the_deadline_arms_again_and_after_it_times_out() -> None:
    # The timer rang for an earlier wait; this wait began later: its deadline is not due yet.
    queue = SendQueue()
    waiting = asyncio.create_task(queue.get_within(60.0))
    await asyncio.sleep(0)
    first = queue._alarm
    assert first is not None
    first.cancel()
    queue._ring(60.0)
    assert not waiting.done()
    assert queue._alarm is not None
    assert queue._alarm is not first
    # The wait began longer ago than the timeout: the timed getter fails.
    queue._waiting_since -= 61.0
    queue._ring(60.0)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(waiting, 1.0)
    assert queue._alarm is None
    # Nobody waits on a deadline when it rings: nothing armed until the next wait.
    queue._ring(60.0)
    assert queue._alarm is None
