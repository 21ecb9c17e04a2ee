"""Routing across instances (issue 18, item 4): an instance hears only the events of rooms
one of its own sockets is in, and every push still crosses instances.

Two apps in this process share one Postgres database and one Redis channel. A client on
one instance and a worker on the other: the job events reach the client, the worker
pushes (``jobs:available``, ``job:pause_requested``, ``lease:revoked``) reach the worker,
and an instance without sockets in a room's channel never hears its events.
"""

from __future__ import annotations

from collections.abc import Awaitable

import pytest
from redis.asyncio import Redis

from server.keys import REDIS_MANAGER
from server.realtime.rooms import USER_NAMESPACE, user_room
from tests.support.jobs import wait_until
from tests.support.redis_apps import received, running_job
from tests.support.server import LiveServer, connect_user, connect_worker

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


async def subscribers(url: str, channel: str) -> int:
    client = Redis.from_url(url)
    try:
        [(_, count)] = await client.pubsub_numsub(channel)
        return int(count)
    finally:
        await client.aclose()


async def test_worker_pushes_cross_instances_and_job_events_reach_only_their_rooms(
    bus_instances: tuple[LiveServer, LiveServer],
) -> None:
    near, far = bus_instances
    worker = await connect_worker(far)
    alice = await connect_user(near, "alice")
    assert (await worker.ok("claim", {"types": ["research"]}))["job"] is None  # now idle

    job = (await alice.ok("job:create", {"type": "research", "input": {}}))["job"]
    await worker.events.wait_for(lambda events: any(n == "jobs:available" for n, _ in events))
    claim = await worker.ok("claim", {"types": ["research"]})
    assert claim["job"]["id"] == job["id"]
    await alice.ok("job:pause", {"job_id": job["id"]})
    await worker.events.wait_for(lambda events: any(n == "job:pause_requested" for n, _ in events))
    await alice.ok("job:cancel", {"job_id": job["id"]})
    await worker.events.wait_for(lambda events: any(n == "lease:revoked" for n, _ in events))
    await alice.events.wait_for_job_event(job["id"], "job:cancelled")

    # far has no socket in alice's rooms: none of her job's events were sent its way.
    assert (await worker.ok("claim", {"types": ["research"]}))["job"] is None  # idle again
    heard_by_far = far.app[REDIS_MANAGER].received
    for _ in range(3):
        await alice.ok("job:create", {"type": "other", "input": {}})
    other = await connect_user(far, "bob")  # far hears near's events for bob only
    await alice.ok("job:create", {"type": "research", "input": {}})  # wakes far's idle worker
    await worker.events.wait_for(lambda events: sum(n == "jobs:available" for n, _ in events) >= 2)
    assert far.app[REDIS_MANAGER].received - heard_by_far == 1  # that jobs:available
    assert other.events.events == []


async def test_a_room_channel_is_subscribed_while_a_local_socket_is_in_the_room(
    bus_instances: tuple[LiveServer, LiveServer], redis_url: str
) -> None:
    near, far = bus_instances
    channel = near.app[REDIS_MANAGER].routes.channel_of(USER_NAMESPACE, user_room("alice"))
    assert await subscribers(redis_url, channel) == 0
    first, second = await connect_user(near, "alice"), await connect_user(far, "alice")
    assert await subscribers(redis_url, channel) == 2  # confirmed before the connect ended
    worker = await connect_worker(far)
    job = await running_job(first, worker)
    assert await received(first, job["id"], 2) == [1, 2]
    assert await received(second, job["id"], 2) == [1, 2]

    await first.disconnect()
    await wait_until(lambda: _equals(subscribers(redis_url, channel), 1), within=10.0)
    await second.disconnect()
    await wait_until(lambda: _equals(subscribers(redis_url, channel), 0), within=10.0)


async def _equals(count: Awaitable[int], expected: int) -> bool:
    return await count == expected
