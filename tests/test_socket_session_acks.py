"""How a Socket.IO session waits for acks (:class:`jobspine_client.socket_session.SocketSession`,
the core of the worker SDK's and the Python client's connections): one future per call, one
timer for all of them; an ack, a timeout or the session's end resolves each call once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
import socketio

from jobspine_client.socket_session import AckMissing, AckWaits, NoAck, SocketSession
from workers.testing import wait_until

WITHIN_S = 5.0


class HeldAcks:
    """Plays ``socketio.AsyncClient``: keeps each call's ack callback for the test to answer."""

    def __init__(self) -> None:
        self.callbacks: dict[str, Callable[..., None]] = {}
        self.refuse_sends = False

    def on(self, event: str, handler: Callable[..., Any], namespace: str | None = None) -> None:
        pass

    async def connect(self, url: str, **kwargs: Any) -> None:
        pass

    async def emit(self, event: str, data: Any = None, *args: Any, **options: Any) -> None:
        if self.refuse_sends:
            raise socketio.exceptions.BadNamespaceError("/workers is not a connected namespace.")
        self.callbacks[data["name"]] = options["callback"]

    async def disconnect(self) -> None:
        pass


async def sent(socket: HeldAcks, *names: str) -> None:
    await wait_until(lambda: all(name in socket.callbacks for name in names), what="sent")


def call(session: SocketSession, name: str, timeout_s: float) -> asyncio.Task[Any]:
    return asyncio.create_task(session.ack("e", {"name": name}, timeout_s))


async def reason(task: asyncio.Task[Any]) -> NoAck:
    with pytest.raises(AckMissing) as missing:
        await asyncio.wait_for(task, WITHIN_S)
    return missing.value.why


async def test_each_call_gets_its_own_ack_in_any_order() -> None:
    socket = HeldAcks()
    session = SocketSession(socket, "/workers")
    first, second = call(session, "a", 60), call(session, "b", 60)
    await sent(socket, "a", "b")
    socket.callbacks["b"]({"ok": True, "n": 2})
    socket.callbacks["a"]({"ok": True, "n": 1}, "ignored")
    assert await asyncio.wait_for(second, WITHIN_S) == {"ok": True, "n": 2}
    assert await asyncio.wait_for(first, WITHIN_S) == {"ok": True, "n": 1}
    socket.callbacks["a"]({"ok": False})  # a second ack changes nothing
    assert session.waiting_acks == 0


class Clock:
    """The acks' clock, moved by the test (the loop's timer is never waited for)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def clocked_session(socket: HeldAcks, clock: Clock) -> tuple[SocketSession, AckWaits]:
    acks = AckWaits(clock=clock)
    return SocketSession(socket, "/workers", acks=acks), acks


async def test_a_short_timeout_after_a_long_one_expires_first_and_alone() -> None:
    socket, clock = HeldAcks(), Clock()
    session, acks = clocked_session(socket, clock)
    patient = call(session, "long", 60)
    await sent(socket, "long")
    hasty = call(session, "short", 10)
    await sent(socket, "short")
    clock.now = 1009.0
    acks.expire_due()
    assert not hasty.done()
    clock.now = 1010.0
    acks.expire_due()
    assert await reason(hasty) is NoAck.TIMEOUT
    assert not patient.done()
    socket.callbacks["short"]({"ok": True})  # too late: nobody waits for it any more
    socket.callbacks["long"]({"ok": True})
    assert await asyncio.wait_for(patient, WITHIN_S) == {"ok": True}


async def test_the_end_of_the_session_resolves_every_waiting_call_as_lost() -> None:
    socket = HeldAcks()
    session = SocketSession(socket, "/workers")
    calls = [call(session, name, 60) for name in "abc"]
    await sent(socket, "a", "b", "c")
    session.end()
    assert [await reason(task) for task in calls] == [NoAck.LOST] * 3
    assert await reason(call(session, "d", 60)) is NoAck.NOT_CONNECTED
    assert session.waiting_acks == 0


async def test_a_cancelled_call_is_forgotten_and_the_others_still_time_out() -> None:
    socket, clock = HeldAcks(), Clock()
    session, acks = clocked_session(socket, clock)
    cancelled, timed = call(session, "a", 10), call(session, "b", 20)
    await sent(socket, "a", "b")
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert session.waiting_acks == 1
    clock.now = 1020.0
    acks.expire_due()
    assert await reason(timed) is NoAck.TIMEOUT
    assert session.waiting_acks == 0


async def test_the_loop_timer_times_a_call_out() -> None:
    """The session's own timer (on the loop's clock) fires for a call already due."""
    socket = HeldAcks()
    session = SocketSession(socket, "/workers")
    patient = call(session, "long", 3600)
    await sent(socket, "long")
    assert await reason(call(session, "now", 0)) is NoAck.TIMEOUT
    assert not patient.done()
    socket.callbacks["long"]({"ok": True})
    assert await asyncio.wait_for(patient, WITHIN_S) == {"ok": True}


async def test_a_failed_send_says_so_and_leaves_nothing_waiting() -> None:
    socket = HeldAcks()
    socket.refuse_sends = True
    session = SocketSession(socket, "/workers")
    assert await reason(call(session, "a", 60)) is NoAck.SEND_FAILED
    assert session.waiting_acks == 0
