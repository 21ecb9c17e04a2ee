"""Emits to this instance's sockets (server/realtime/local_emit.py), with and without Redis:
one encoding, one packet per recipient however many of the rooms it is in, no task per
recipient, python-socketio's own way for callbacks and binary data, and a client over its
queue bound dropped alone. The sockets have no network (tests/support/local_sockets.py);
the Redis manager is built but never started, so nothing it offers leaves the process.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest

from server.realtime.local_emit import LocalManager
from server.realtime.redis_manager import JobspineRedisManager
from server.realtime.redis_signing import MessageSigner
from server.realtime.sockets import SocketServer
from tests.support.jobs import wait_until
from tests.support.local_sockets import LocalSockets

JOB_ROOM, USER_ROOM = "job:j1", "user:u1"
EVENT = ("job:progress", {"job_id": "j1", "seq": 3, "data": {"progress": 12.5}})
ENCODED = '2["job:progress",{"job_id":"j1","seq":3,"data":{"progress":12.5}}]'
MAX_CLIENT_QUEUE = 3

Offers = list[tuple[str, tuple[str, ...]]]


def _redis_manager() -> JobspineRedisManager:
    # Never started: no connection is made; what it would publish stays in its outbox.
    return JobspineRedisManager(
        "redis://127.0.0.1:6379/0", channel="local-emit-test", signer=MessageSigner([b"k"])
    )


@pytest.fixture(params=["local", "redis"])
async def local(request: pytest.FixtureRequest) -> AsyncIterator[LocalSockets]:
    manager = _redis_manager() if request.param == "redis" else None
    sockets = SocketServer(
        max_message_bytes=1 << 20, client_manager=manager, max_client_queue=MAX_CLIENT_QUEUE
    )
    yield LocalSockets(sockets)
    await sockets.shutdown()


def _record_offers(local: LocalSockets, monkeypatch: pytest.MonkeyPatch) -> Offers:
    """What the Redis manager offers for publishing (an empty list without Redis)."""
    offers: Offers = []
    manager = local.server.manager
    if isinstance(manager, JobspineRedisManager):
        record = lambda channel, message, rooms: offers.append((channel, rooms))  # noqa: E731
        monkeypatch.setattr(manager.outbox, "offer", record)
    return offers


async def _tasks_started_by(emit: Callable[[], Coroutine[Any, Any, None]]) -> int:
    loop = asyncio.get_running_loop()
    started = 0

    def counting_factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> Any:
        nonlocal started
        started += 1
        return asyncio.Task(coro, loop=loop, **kwargs)

    loop.set_task_factory(counting_factory)
    try:
        await emit()
    finally:
        loop.set_task_factory(None)
    return started


def test_without_redis_the_socket_server_uses_the_lean_manager() -> None:
    assert isinstance(SocketServer(max_message_bytes=1024).server.manager, LocalManager)


async def test_each_socket_in_any_of_the_rooms_gets_the_event_once(
    local: LocalSockets, monkeypatch: pytest.MonkeyPatch
) -> None:
    both = await local.connect(rooms=(JOB_ROOM, USER_ROOM))
    job_only = await local.connect(rooms=(JOB_ROOM,))
    user_only = await local.connect(rooms=(USER_ROOM,))
    neither = await local.connect(rooms=("job:other",))
    skipped = await local.connect(rooms=(JOB_ROOM, USER_ROOM))
    worker = await local.connect("/workers", rooms=(JOB_ROOM,))
    offers = _record_offers(local, monkeypatch)

    name, data = EVENT
    await local.server.emit(name, data, to=[JOB_ROOM, USER_ROOM], skip_sid=skipped.sid)
    await local.server.emit(name, {**data, "seq": 4}, to=[USER_ROOM, JOB_ROOM])

    second = ENCODED.replace('"seq":3', '"seq":4')
    for socket in (both, job_only, user_only):
        assert socket.take() == [ENCODED, second]
    assert skipped.take() == [second]
    assert neither.take() == []
    assert worker.take() == []  # another namespace
    if isinstance(local.server.manager, JobspineRedisManager):  # one offer per routed room
        rooms = [rooms for _, rooms in offers]
        assert rooms == [(JOB_ROOM,), (USER_ROOM,), (USER_ROOM,), (JOB_ROOM,)]


async def test_an_emit_starts_no_task_per_recipient(local: LocalSockets) -> None:
    watchers = [await local.connect(rooms=(JOB_ROOM, USER_ROOM)) for _ in range(4)]
    name, data = EVENT

    async def to_rooms() -> None:
        await local.sockets.emit(name, data, [JOB_ROOM, USER_ROOM], "/")

    async def local_only() -> None:
        await local.sockets.emit(name, data, [JOB_ROOM, USER_ROOM], "/", local_only=True)

    async def to_one_socket() -> None:
        await local.sockets.emit_to_socket(name, data, watchers[0].sid, "/")

    assert await _tasks_started_by(to_rooms) == 0
    assert await _tasks_started_by(local_only) == 0
    assert await _tasks_started_by(to_one_socket) == 0
    assert watchers[0].take() == [ENCODED] * 3
    for watcher in watchers[1:]:
        assert watcher.take() == [ENCODED] * 2


async def test_a_local_only_emit_and_an_emit_to_one_socket_are_not_published(
    local: LocalSockets, monkeypatch: pytest.MonkeyPatch
) -> None:
    watcher = await local.connect(rooms=(JOB_ROOM,))
    other = await local.connect(rooms=(JOB_ROOM,))
    offers = _record_offers(local, monkeypatch)
    name, data = EVENT

    await local.sockets.emit(name, data, [JOB_ROOM], "/", local_only=True)
    await local.sockets.emit_to_socket(name, data, watcher.sid, "/")

    assert watcher.take() == [ENCODED, ENCODED]
    assert other.take() == [ENCODED]
    assert offers == []
    await local.sockets.emit(name, data, [JOB_ROOM], "/")
    assert other.take() == [ENCODED]
    if isinstance(local.server.manager, JobspineRedisManager):
        assert [rooms for _, rooms in offers] == [(JOB_ROOM,)]


async def test_callbacks_and_binary_data_keep_python_socketios_way(local: LocalSockets) -> None:
    watcher = await local.connect(rooms=(JOB_ROOM,))
    answers: list[object] = []

    await local.server.emit("ask", {"n": 1}, to=watcher.sid, callback=answers.append)
    await local.server.emit("blob", {"raw": b"\x00\x01"}, to=JOB_ROOM)

    asked, *blob = watcher.take()
    ack_id = re.fullmatch(r'2(\d+)\["ask",\{"n":1\}\]', asked)  # an ack id of its own
    assert ack_id is not None
    assert blob == ['51-["blob",{"raw":{"_placeholder":true,"num":0}}]', b"\x00\x01"]
    await local.server.manager.trigger_callback(watcher.sid, int(ack_id[1]), ["yes"])
    assert answers == ["yes"]


async def test_a_client_over_its_queue_bound_is_dropped_alone(local: LocalSockets) -> None:
    reader = await local.connect(rooms=(USER_ROOM,))
    laggard = await local.connect(rooms=(USER_ROOM,))
    name, data = EVENT
    events = 2 * MAX_CLIENT_QUEUE
    seen: list[Any] = []

    for seq in range(events):  # the reader takes each event, the laggard none
        await local.sockets.emit(name, {**data, "seq": seq}, [USER_ROOM], "/")
        seen.extend(reader.take())

    assert seen == [ENCODED.replace('"seq":3', f'"seq":{seq}') for seq in range(events)]
    bound = local.sockets.send_queue_bound
    assert bound is not None
    assert bound.dropped == 1

    async def laggard_gone() -> bool:
        return not local.sockets.is_connected(laggard.sid, "/")

    await wait_until(laggard_gone)
    assert local.sockets.is_connected(reader.sid, "/")
    assert laggard.take() == [None]  # its queue freed; the end marker stops its writer
    await local.sockets.emit(name, data, [USER_ROOM], "/")
    assert reader.take() == [ENCODED]
