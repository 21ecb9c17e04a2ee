"""Signed Redis messages: what a shared Redis can publish reaches no client and joins no
room (issue 13, hole 5); instances sharing a key deliver, instances with another do not.

The injections are raw ``PUBLISH`` commands on the channels the instances use, in both
python-socketio's own message format and jobspine's sealed one (signed under another key,
or replayed from another channel). Each is followed by a genuine event: Redis delivers
messages to a subscriber in the order it took the ``PUBLISH`` commands, and the listener
handles them in order, so once the genuine event arrived the forged ones were handled.
The signer and the signing key's settings alone: ``test_redis_signing_units.py``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from redis.asyncio import Redis

from server.keys import REDIS_MANAGER, SIO
from server.realtime.redis_signing import MessageSigner
from server.realtime.rooms import USER_NAMESPACE, user_room
from tests.support.redis_apps import OTHER_SIGNING_KEY, SIGNING_KEY, metric_values, two_instances
from tests.support.server import LiveServer, SocketClient, StartServer, connect_user

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def room_channel(channel: str, room: str) -> str:
    return f"{channel}:room:{USER_NAMESPACE}:{room}"


def forged_completion(room: str) -> dict[str, Any]:
    """python-socketio's own emit message: a ``job:completed`` for ``room``."""
    event = {"type": "job:completed", "job_id": "forged", "seq": 99, "result": {"owned": True}}
    return {
        "method": "emit",
        "event": "job:completed",
        "data": [event],
        "binary": False,
        "namespace": USER_NAMESPACE,
        "room": room,
        "skip_sid": None,
        "callback": None,
        "host_id": "f" * 32,
    }


def sealed(key: str, channel: str, header: dict[str, Any], body: bytes = b"") -> bytes:
    text = json.dumps(header).encode()
    return MessageSigner([key.encode()]).seal(channel, "f" * 32, text, body)


async def publish_all(url: str, messages: list[tuple[str, bytes]]) -> None:
    client = Redis.from_url(url)
    try:
        for channel, message in messages:
            await client.publish(channel, message)
    finally:
        await client.aclose()


async def genuine_job_created(far: LiveServer, near_client: SocketClient, sub: str) -> str:
    """A job of ``sub``'s created on ``far``; returns once ``near_client`` got its event."""
    status, job = await far.rest(
        "POST", "/api/jobs", token=far.token(sub), json={"type": "research", "input": {}}
    )
    assert status == 201, job
    await near_client.events.wait_for_job_event(job["id"], "job:created")
    return str(job["id"])


@pytest.fixture
async def signed_pair(
    start_server: StartServer, bus_settings: dict[str, str]
) -> tuple[LiveServer, LiveServer]:
    """Two instances signing with :data:`SIGNING_KEY`."""
    return await two_instances(start_server, {**bus_settings, "REDIS_SIGNING_KEY": SIGNING_KEY})


async def test_a_forged_job_completed_reaches_no_client_and_is_counted(
    signed_pair: tuple[LiveServer, LiveServer], redis_url: str, redis_channel: str
) -> None:
    near, far = signed_pair
    alice = await connect_user(near, "alice")
    room = user_room("alice")
    forged = forged_completion(room)
    raw = json.dumps(forged).encode()
    header = {"method": "emit_packet", "namespace": "/", "rooms": [room], "index": 0}
    packet = b'2["job:completed",{"type":"job:completed","job_id":"forged","seq":99}]'
    on_room = room_channel(redis_channel, room)
    moved = sealed(SIGNING_KEY, redis_channel, {**header, "index": None}, packet)  # replayed
    await publish_all(
        redis_url,
        [
            (redis_channel, raw),  # python-socketio's format, main channel
            (on_room, raw),  # and on the room's channel
            (on_room, sealed(OTHER_SIGNING_KEY, on_room, header, packet)),  # another key
            (on_room, moved),
            (redis_channel, sealed(OTHER_SIGNING_KEY, redis_channel, forged)),
        ],
    )
    await genuine_job_created(far, alice, "alice")

    assert [name for name, _ in alice.events.events if name == "job:completed"] == []
    manager = near.app[REDIS_MANAGER]
    assert manager.rejected == 5
    assert (await metric_values(near))["jobspine_redis_rejected_total"] == 5


async def test_a_forged_enter_room_joins_no_socket_to_another_users_room(
    signed_pair: tuple[LiveServer, LiveServer], redis_url: str, redis_channel: str
) -> None:
    near, far = signed_pair
    mallory = await connect_user(near, "mallory")
    sid = mallory.sio.get_sid(USER_NAMESPACE)
    assert sid is not None
    enter = {
        "method": "enter_room",
        "sid": sid,
        "room": user_room("alice"),
        "namespace": USER_NAMESPACE,
        "host_id": "f" * 32,
    }
    await publish_all(
        redis_url,
        [
            (redis_channel, json.dumps(enter).encode()),
            (redis_channel, sealed(OTHER_SIGNING_KEY, redis_channel, enter)),
        ],
    )
    await genuine_job_created(far, mallory, "mallory")  # the forgeries were handled

    assert not near.app[SIO].in_room(sid, user_room("alice"), USER_NAMESPACE)
    alice_job = (
        await far.rest(
            "POST", "/api/jobs", token=far.token("alice"), json={"type": "t", "input": {}}
        )
    )[1]
    await genuine_job_created(far, mallory, "mallory")  # alice's job:created went out before
    assert mallory.events.of_job(alice_job["id"]) == []
    assert near.app[REDIS_MANAGER].rejected == 2


async def test_instances_deliver_with_the_same_key_and_not_with_another(
    signed_pair: tuple[LiveServer, LiveServer],
    start_server: StartServer,
    bus_settings: dict[str, str],
) -> None:
    near, far = signed_pair
    alice = await connect_user(near, "alice")
    await genuine_job_created(far, alice, "alice")
    assert near.app[REDIS_MANAGER].rejected == 0

    stranger = await start_server(env={**bus_settings, "REDIS_SIGNING_KEY": OTHER_SIGNING_KEY})
    status, job = await stranger.rest(
        "POST", "/api/jobs", token=stranger.token("alice"), json={"type": "t", "input": {}}
    )
    assert status == 201
    await genuine_job_created(far, alice, "alice")  # after the stranger's message
    assert alice.events.of_job(job["id"]) == []
    assert near.app[REDIS_MANAGER].rejected == 1
