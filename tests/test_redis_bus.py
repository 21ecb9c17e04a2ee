"""The Redis bus inside the app: cross-instance delivery, readiness, outages, a dead listener.

Two apps in this process share one Postgres database and one Redis channel, as two web
processes would (``tests/test_scaling.py`` runs real processes). Tests that stop Redis use a
private ``redis-server``; the others use the shared one on a channel of their own.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable

import pytest
from redis.asyncio import Redis

from server.config import load_settings
from server.errors import ConfigError
from server.keys import REDIS_MANAGER, REDIS_WATCHDOG
from server.realtime.redis_manager import JobspineRedisManager
from tests.support.jobs import wait_until
from tests.support.redis import FreezingProxy, RedisServer
from tests.support.redis_apps import (
    HEAL_WITHIN_S,
    bus_env,
    is_ready,
    metric_values,
    not_ready,
    progress,
    readyz,
    received,
    running_job,
    seqs,
    two_instances,
)
from tests.support.server import (
    TEST_SECRET,
    LiveServer,
    StartServer,
    connect_user,
    connect_worker,
    running_server,
)

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def test_redis_without_a_database_is_refused_in_one_line() -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings({"JWT_SECRET": TEST_SECRET, "REDIS_URL": "redis://127.0.0.1:6379/0"})
    message = str(raised.value)
    assert message.startswith("REDIS_URL: needs DATABASE_URL")
    assert "\n" not in message


async def test_an_event_made_on_one_instance_reaches_a_client_of_another_in_order_once(
    bus_instances: tuple[LiveServer, LiveServer],
) -> None:
    a, b = bus_instances
    owner = await connect_user(a, "alice")
    worker = await connect_worker(b)
    job = await running_job(owner, worker)
    await owner.ok("job:subscribe", {"job_id": job["id"]})
    for value in range(1, 6):
        await progress(worker, job, value * 10)
    await worker.ok("complete", {"job_id": job["id"], "lease": job["lease"], "result": {}})

    await owner.events.wait_for_job_event(job["id"], "job:completed")
    # created (on A), started, 5 progress, completed (on B): each once, in seq order.
    assert seqs(owner, job["id"]) == list(range(1, 9))
    assert a.app[REDIS_MANAGER].listener_restarts == 0


async def test_while_redis_is_down_local_clients_get_every_event_and_readyz_names_redis(
    start_server: StartServer, postgres_dsn: str, private_redis: RedisServer, redis_channel: str
) -> None:
    a, b = await two_instances(
        start_server, bus_env(postgres_dsn, private_redis.url, redis_channel)
    )
    near, far = await connect_user(a, "alice"), await connect_user(b, "alice")
    worker = await connect_worker(a)
    job = await running_job(near, worker)
    assert await received(far, job["id"], 2) == [1, 2]  # created, started: over Redis

    await private_redis.stop()
    await wait_until(lambda: not_ready(a), within=HEAL_WITHIN_S)
    status, body = await readyz(a)
    assert status == 503
    assert body["error"]["code"] == "unavailable"
    assert body["error"]["details"] == {"failed": ["redis"]}
    # The publishes fail: the calls still succeed and the local client gets every event,
    # up to the job's last one.
    for value in (10, 20):
        await progress(worker, job, value)
    await worker.ok("complete", {"job_id": job["id"], "lease": job["lease"], "result": {}})
    assert await received(near, job["id"], 5) == [1, 2, 3, 4, 5]
    assert seqs(far, job["id"]) == [1, 2]
    stored = await a.store.read_stream(job["id"], 2)
    assert stored is not None
    assert [event.seq for event in stored.events] == [3, 4, 5]
    assert a.app[REDIS_MANAGER].outbox.dropped >= 1
    metrics = await metric_values(a)
    assert metrics["jobspine_redis_up"] == 0
    assert metrics["jobspine_redis_dropped_total"] >= 1

    await private_redis.start()
    for server in (a, b):
        await wait_until(functools.partial(is_ready, server), within=HEAL_WITHIN_S)
    # No event follows the job's last, so the instances send the latest one again: the far
    # client gets it, sees the gap (3 and 4 are missing) and fills it by replay.
    assert (await received(far, job["id"], 3))[:3] == [1, 2, 5]
    assert far.events.of_job(job["id"])[2]["type"] == "job:completed"
    ack = await far.ok(
        "job:subscribe", {"job_id": job["id"], "after_seq": 2, "epoch": job["epoch"]}
    )
    assert ack["recovered"] is True
    assert [event["seq"] for event in ack["events"]] == [3, 4, 5]


async def test_a_dead_listener_is_detected_restarted_and_delivery_resumes(
    bus_instances: tuple[LiveServer, LiveServer],
) -> None:
    a, b = bus_instances
    manager: JobspineRedisManager = a.app[REDIS_MANAGER]
    owner = await connect_user(a, "alice")
    worker = await connect_worker(b)
    job = await running_job(owner, worker)
    assert await received(owner, job["id"], 2) == [1, 2]

    # python-socketio's listener loop ends for good when listen() fails in some ways;
    # ending its task is that failure, seen from outside.
    listener = manager._listener
    assert listener is not None
    listener.cancel()
    await asyncio.wait({listener})
    assert not manager.listener_running

    await wait_until(lambda: not_ready(a), within=HEAL_WITHIN_S)
    await wait_until(lambda: is_ready(a), within=HEAL_WITHIN_S)
    assert manager.listener_restarts >= 1
    assert manager.listener_running
    await progress(worker, job, 10)
    await owner.events.wait_for(lambda _: 3 in seqs(owner, job["id"]), HEAL_WITHIN_S)
    # Each seq in order, and 2 perhaps twice: the repair sends the latest event of the jobs
    # of local user rooms again once the listener subscribed anew (clients drop the copy).
    got = seqs(owner, job["id"])
    assert list(dict.fromkeys(got)) == [1, 2, 3]
    assert got.count(2) <= 2
    metrics = await metric_values(a)
    assert metrics["jobspine_redis_listener_restarts_total"] >= 1
    assert metrics["jobspine_redis_up"] == 1
    assert metrics["jobspine_redis_published_total"] >= 1


async def test_a_resubscribed_instance_sends_the_latest_events_to_its_user_room_watchers(
    bus_instances: tuple[LiveServer, LiveServer],
) -> None:
    a, b = bus_instances
    near, far = await connect_user(a, "alice"), await connect_user(b, "alice")
    worker = await connect_worker(a)
    job = await running_job(near, worker)
    # far watches through alice's user room only (no job:subscribe).
    assert await received(far, job["id"], 2) == [1, 2]

    listener = b.app[REDIS_MANAGER]._listener
    assert listener is not None
    listener.cancel()
    await asyncio.wait({listener})
    # A publishes every event (nothing to repair on its side); B hears none of them.
    await progress(worker, job, 10)
    await worker.ok("complete", {"job_id": job["id"], "lease": job["lease"], "result": {}})
    assert await received(near, job["id"], 4) == [1, 2, 3, 4]

    await wait_until(lambda: not_ready(b), within=HEAL_WITHIN_S)
    await wait_until(lambda: is_ready(b), within=HEAL_WITHIN_S)
    # B subscribed again and sent its user room the job's latest event: far sees the gap.
    assert (await received(far, job["id"], 3))[:3] == [1, 2, 4]
    assert far.events.of_job(job["id"])[2]["type"] == "job:completed"


async def test_a_listener_on_a_connection_gone_silent_is_detected_and_restarted(
    start_server: StartServer, postgres_dsn: str, private_redis: RedisServer, redis_channel: str
) -> None:
    proxy = FreezingProxy(private_redis.port)
    await proxy.start()
    try:
        a, b = await asyncio.gather(
            start_server(env=bus_env(postgres_dsn, proxy.url, redis_channel)),
            start_server(env=bus_env(postgres_dsn, private_redis.url, redis_channel)),
        )
        for server in (a, b):
            await wait_until(functools.partial(is_ready, server), within=HEAL_WITHIN_S)
        manager: JobspineRedisManager = a.app[REDIS_MANAGER]
        owner = await connect_user(a, "alice")
        worker = await connect_worker(b)
        job = await running_job(owner, worker)
        assert await received(owner, job["id"], 2) == [1, 2]

        # A's connections stay open but carry nothing: its listener still looks subscribed.
        assert proxy.freeze() >= 1
        await wait_until(lambda: not_ready(a), within=HEAL_WITHIN_S)
        await wait_until(lambda: is_ready(a), within=HEAL_WITHIN_S)
        assert manager.listener_restarts >= 1
        await progress(worker, job, 10)
        await owner.events.wait_for(lambda _: 3 in seqs(owner, job["id"]))
    finally:
        await proxy.close()


async def other_connections(redis: RedisServer) -> int:
    """Connections to ``redis`` besides the one asking."""
    client = Redis.from_url(redis.url)
    try:
        return len(await client.client_list()) - 1
    finally:
        await client.aclose()


async def test_the_app_closes_its_redis_connections_and_tasks_at_shutdown(
    postgres_dsn: str, private_redis: RedisServer, redis_channel: str
) -> None:
    async with running_server(env=bus_env(postgres_dsn, private_redis.url, redis_channel)) as a:
        await wait_until(lambda: is_ready(a), within=HEAL_WITHIN_S)
        assert a.app[REDIS_WATCHDOG].healthy
        assert await other_connections(private_redis) == 2  # the listener, the publisher
    tasks = {task.get_name() for task in asyncio.all_tasks()}
    assert not tasks & {"redis-listener", "redis-sender", "redis-watchdog"}
    await wait_until(lambda: _none(other_connections(private_redis)), within=HEAL_WITHIN_S)


async def _none(count: Awaitable[int]) -> bool:
    return await count == 0
