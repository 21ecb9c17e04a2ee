"""The websocket writer's wait (server/realtime/writer_wait.py) and the send queue's timed get
it stands on: Engine.IO's poll, without a task and a timer per wake-up.

Time is the test's: :class:`LoopTime` gives the running loop a clock the test moves and
keeps the timers armed on it, firing those that are due when the clock moves, so every
deadline here is reached without waiting and what is armed is seen on the loop, not in the
queue's fields.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from contextvars import Context
from typing import Any, TypeVar

import pytest
from engineio import exceptions
from engineio.async_socket import AsyncSocket

from server.realtime.send_queue import SendQueue
from server.realtime.sockets import SocketServer
from server.realtime.writer_wait import lean_poll

START = 1_000.0
T = TypeVar("T")


class Timer:
    """A timer armed on :class:`LoopTime`'s loop (what ``call_at`` returns)."""

    def __init__(self, when: float, callback: Callable[..., object], args: tuple[Any, ...]) -> None:
        self._when = when
        self._callback = callback
        self._args = args
        self._cancelled = False
        self.rang = False

    def when(self) -> float:
        return self._when

    def cancel(self) -> None:
        self._cancelled = True

    def cancelled(self) -> bool:
        return self._cancelled

    @property
    def pending(self) -> bool:
        return not self._cancelled and not self.rang

    def ring(self) -> None:
        self.rang = True
        self._callback(*self._args)


class LoopTime:
    """The running loop's ``time`` and ``call_at``, the test's: ``advance`` moves the clock
    and rings the timers that are due then, in order (those they arm too)."""

    def __init__(self) -> None:
        self.now = START
        self.timers: list[Timer] = []

    def time(self) -> float:
        return self.now

    def call_at(
        self,
        when: float,
        callback: Callable[..., object],
        *args: Any,
        context: Context | None = None,
    ) -> Timer:
        timer = Timer(when, callback, args)
        self.timers.append(timer)
        return timer

    def call_later(
        self,
        delay: float,
        callback: Callable[..., object],
        *args: Any,
        context: Context | None = None,
    ) -> Timer:
        return self.call_at(self.now + delay, callback, *args)

    def advance(self, seconds: float) -> None:
        self.now += seconds
        while due := sorted(
            (t for t in self.timers if t.pending and t.when() <= self.now), key=Timer.when
        ):
            due[0].ring()

    def pending(self) -> list[Timer]:
        return [timer for timer in self.timers if timer.pending]


async def started(work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    """A task of ``work`` that has taken its first step: asyncio runs a new task's first step
    in the next turn of the loop, before the task that created it goes on."""
    task = asyncio.create_task(work)
    await asyncio.sleep(0)  # (one turn of the loop, not a wait for time)
    return task


@pytest.fixture
async def clock(monkeypatch: pytest.MonkeyPatch) -> LoopTime:
    loop = asyncio.get_running_loop()
    time = LoopTime()
    monkeypatch.setattr(loop, "time", time.time)
    monkeypatch.setattr(loop, "call_at", time.call_at)
    monkeypatch.setattr(loop, "call_later", time.call_later)
    return time


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


async def test_poll_returns_what_is_queued_up_to_the_end_marker_then_nothing(
    clock: LoopTime,
) -> None:
    queue = SendQueue()
    socket = FakeSocket(queue)
    waiting = await started(poll(socket))
    assert not waiting.done()
    for packet in ("a", "b", None, "late"):
        queue.put_nowait(packet)
    assert await waiting == ["a", "b"]
    # As Engine.IO's poll: the end marker goes back behind what came after it, then ends it.
    assert await poll(socket) == ["late"]
    assert await poll(socket) == []
    await queue.join()  # every packet taken was marked done (else this would not return)
    assert clock.pending() == []


async def test_poll_without_a_packet_within_the_ping_timeout_is_queue_empty(
    clock: LoopTime,
) -> None:
    waiting = await started(poll(FakeSocket(SendQueue(), timeout_s=45.0)))
    clock.advance(44.9)
    await asyncio.sleep(0)
    assert not waiting.done()
    clock.advance(0.1)
    with pytest.raises(exceptions.QueueEmpty):
        await waiting
    assert clock.pending() == []


async def test_a_cancelled_writer_ends_cancelled_and_leaves_no_timer_armed(
    clock: LoopTime,
) -> None:
    queue = SendQueue()
    writer = await started(poll(FakeSocket(queue)))
    assert len(clock.pending()) == 1
    writer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await writer
    assert writer.cancelled()
    # Nothing of the loop holds the queue of the closed socket any more.
    assert clock.pending() == []
    # The queue still serves a next writer.
    queue.put_nowait("a")
    assert await poll(FakeSocket(queue)) == ["a"]


async def test_the_end_marker_disarms_the_timer_of_a_writer_gone_meanwhile(
    clock: LoopTime,
) -> None:
    queue = SendQueue()
    getter = await started(queue.get_within(45.0))
    queue.put_nowait("a")
    assert await getter == "a"
    assert len(clock.pending()) == 1  # kept for the next wait's deadline
    # The writer stopped without waiting again (its send failed); the socket's end marker:
    queue.put_nowait(None)
    assert clock.pending() == []


async def test_a_polling_client_or_another_queue_gets_engineio_s_own_poll(
    clock: LoopTime,
) -> None:
    for socket in (FakeSocket(SendQueue(), upgraded=False), FakeSocket(asyncio.Queue())):
        socket.queue.put_nowait("a")
        socket.queue.put_nowait("b")
        assert await poll(socket) == ["a", "b"]


async def test_get_within_takes_a_queued_item_at_once_and_arms_no_timer(clock: LoopTime) -> None:
    queue = SendQueue()
    queue.put_nowait("a")
    assert await queue.get_within(45.0) == "a"
    assert clock.timers == []


async def test_get_within_times_out_takes_nothing_and_the_next_wait_gets_the_item(
    clock: LoopTime,
) -> None:
    queue = SendQueue()
    first = await started(queue.get_within(10.0))
    clock.advance(10.0)
    with pytest.raises(TimeoutError):
        await first
    second = await started(queue.get_within(60.0))
    queue.put_nowait("x")
    assert await second == "x"


async def test_one_timer_stands_for_the_deadline_of_many_waits(clock: LoopTime) -> None:
    queue = SendQueue()
    for packet in ("a", "b", "c"):
        waiting = await started(queue.get_within(60.0))
        clock.advance(1.0)
        queue.put_nowait(packet)
        assert await waiting == packet
    assert len(clock.timers) == 1  # armed by the first wait, not again for the next ones
    queue.put_nowait(None)
    assert await queue.get_within(60.0) is None
    assert clock.timers[0].cancelled()  # the end marker disarms it
    assert clock.pending() == []


async def test_the_timer_ringing_before_the_deadline_arms_again_and_after_it_times_out(
    clock: LoopTime,
) -> None:
    queue = SendQueue()
    first = await started(queue.get_within(60.0))
    clock.advance(50.0)
    queue.put_nowait("a")
    assert await first == "a"
    # A wait that began 50 s after the timer was armed: its deadline is 60 s after that.
    second = await started(queue.get_within(60.0))
    clock.advance(10.0)  # the timer rings for the first wait's deadline: early for this one
    await asyncio.sleep(0)
    assert not second.done()
    assert [timer.when() for timer in clock.pending()] == [START + 110.0]
    clock.advance(49.9)
    await asyncio.sleep(0)
    assert not second.done()
    clock.advance(0.1)
    with pytest.raises(TimeoutError):
        await second
    assert clock.pending() == []


async def test_a_timer_that_rings_while_nobody_waits_is_not_armed_again(clock: LoopTime) -> None:
    queue = SendQueue()
    getter = await started(queue.get_within(60.0))
    queue.put_nowait("a")
    assert await getter == "a"
    clock.advance(60.0)
    assert clock.timers[0].rang
    assert clock.pending() == []  # the next wait arms it
    later = await started(queue.get_within(60.0))
    assert [timer.when() for timer in clock.pending()] == [START + 120.0]
    queue.put_nowait("b")
    assert await later == "b"
