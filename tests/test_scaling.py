"""Two real web processes, one Postgres database, one Redis: no lost or duplicated events.

Each test gets a fresh database and a Redis channel of its own; the tests that stop Redis
run a private ``redis-server``. Every wait is a condition with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import pytest

from tests.support.jobs import wait_until
from tests.support.processes import (
    SECRET,
    Proc,
    WebProcess,
    free_port,
    spawn,
    stop,
    token,
    web_process,
)
from tests.support.redis import RedisServer
from tests.support.redis_apps import bus_env, progress, received, running_job, seqs
from tests.support.server import SocketClient, connected
from tests.support.staleness import RowAging

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

#: Generous: other test sessions share the machine; a healthy run takes a second or two.
WITHIN_S = 30.0
USER = "alice"


@contextlib.asynccontextmanager
async def two_instances(env: Mapping[str, str]) -> AsyncIterator[tuple[WebProcess, WebProcess]]:
    """Web processes A and B with the same settings, each ready."""
    async with contextlib.AsyncExitStack() as stack:
        a, b = await asyncio.gather(
            stack.enter_async_context(web_process("web-a", **env)),
            stack.enter_async_context(web_process("web-b", **env)),
        )
        yield a, b


def user(web: WebProcess, sub: str = USER) -> contextlib.AbstractAsyncContextManager[SocketClient]:
    return connected(web.url, "/", token(sub))


def worker(web: WebProcess) -> contextlib.AbstractAsyncContextManager[SocketClient]:
    return connected(web.url, "/workers", token("worker-1", "worker"))


async def readyz(url: str) -> int:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/readyz") as response:
        return response.status


async def get(url: str, path: str, bearer: str) -> Any:
    headers = {"Authorization": f"Bearer {bearer}"}
    async with aiohttp.ClientSession() as http, http.get(url + path, headers=headers) as response:
        assert response.status == 200, await response.text()
        return await response.json()


def status_is(url: str, status: int) -> Any:
    async def check() -> bool:
        return await readyz(url) == status

    return check


async def test_a_client_on_a_gets_every_event_a_worker_on_b_makes_in_order_once(
    bus_settings: dict[str, str],
) -> None:
    async with two_instances(bus_settings) as (a, b), user(a) as owner, worker(b) as work:
        job = await running_job(owner, work)
        await owner.ok("job:subscribe", {"job_id": job["id"]})
        for value in range(1, 21):
            await progress(work, job, value * 5)
        await work.ok("complete", {"job_id": job["id"], "lease": job["lease"], "result": {}})
        await owner.events.wait_for_job_event(job["id"], "job:completed", WITHIN_S)
        # created (made on A), started and 20 progress (on B), completed (on B).
        assert seqs(owner, job["id"]) == list(range(1, 24))


async def test_a_client_that_moves_from_a_to_b_mid_job_resyncs_without_a_gap(
    bus_settings: dict[str, str],
) -> None:
    async with two_instances(bus_settings) as (a, b), worker(b) as work:
        async with user(a) as first:
            job = await running_job(first, work)
            await first.ok("job:subscribe", {"job_id": job["id"]})
            for value in (10, 20):
                await progress(work, job, value)
            seen = await received(first, job["id"], 4, WITHIN_S)
        assert seen == [1, 2, 3, 4]
        for value in (30, 40, 50):  # while the client is between instances
            await progress(work, job, value)
        async with user(b) as second:
            ack = await second.ok(
                "job:subscribe", {"job_id": job["id"], "after_seq": 4, "epoch": job["epoch"]}
            )
            assert ack["recovered"] is True
            replayed = [event["seq"] for event in ack["events"]]
            await progress(work, job, 60)
            live = await received(second, job["id"], 1, WITHIN_S)
        assert seen + replayed + live == list(range(1, 9))


#: A heartbeat timeout no slow machine reaches by itself: tests age heartbeats instead.
HEARTBEAT_TIMEOUT_S = 60.0
FAST_SUPERVISION = {"HEARTBEAT_TIMEOUT_S": str(HEARTBEAT_TIMEOUT_S), "SUPERVISOR_INTERVAL_S": "0.1"}


async def supervisor(web: WebProcess) -> dict[str, Any]:
    status: dict[str, Any] = await get(web.url, "/api/admin/supervisor", token("root", "admin"))
    return status


async def silent_stale_job(
    owner: SocketClient, work: SocketClient, postgres_dsn: str
) -> dict[str, Any]:
    """A running job with a checkpoint whose worker then says nothing more, its heartbeat
    aged past the timeout."""
    job = await running_job(owner, work)
    await work.ok("checkpoint", {"job_id": job["id"], "lease": job["lease"], "data": {"step": 1}})
    await owner.ok("job:subscribe", {"job_id": job["id"]})
    await RowAging(postgres_dsn).age(job["id"], HEARTBEAT_TIMEOUT_S + 1)
    return job


async def test_a_stale_job_is_recovered_once_with_both_supervisors_running(
    postgres_dsn: str, redis_url: str, redis_channel: str
) -> None:
    env = bus_env(postgres_dsn, redis_url, redis_channel, **FAST_SUPERVISION)
    async with two_instances(env) as (a, b), user(a) as owner, worker(b) as work:
        job = await silent_stale_job(owner, work, postgres_dsn)
        await owner.events.wait_for_job_event(job["id"], "job:paused", WITHIN_S)
        seen = {web.url: await supervisor(web) for web in (a, b)}

        async def both_ticked_again() -> bool:
            for web in (a, b):
                now, before = await supervisor(web), seen[web.url]
                if now["ticks"] + now["standby"] < before["ticks"] + before["standby"] + 3:
                    return False
            return True

        await wait_until(both_ticked_again, within=WITHIN_S)
        statuses = [await supervisor(web) for web in (a, b)]
        # Both run; one holds the scan lock and scans, the other stands by.
        assert all(status["running"] for status in statuses)
        assert sorted(status["scanning"] for status in statuses) == [False, True]
        assert sum(status["paused"] for status in statuses) == 1
        stream = await get(a.url, f"/api/jobs/{job['id']}/events?after_seq=0", token(USER))
        types = [event["type"] for event in stream["events"]]
        assert types.count("job:paused") == 1
        assert stream["job"]["state"] == "paused"
        live = [event["type"] for event in owner.events.of_job(job["id"])]
        assert live.count("job:paused") == 1


async def test_when_the_scanning_instance_dies_the_other_takes_over(
    postgres_dsn: str, redis_url: str, redis_channel: str
) -> None:
    env = bus_env(postgres_dsn, redis_url, redis_channel, **FAST_SUPERVISION)
    async with two_instances(env) as (a, b):

        async def one_scans() -> bool:
            statuses = [await supervisor(web) for web in (a, b)]
            return sorted(status["scanning"] for status in statuses) == [False, True]

        await wait_until(one_scans, within=WITHIN_S)
        scanner, survivor = (a, b) if (await supervisor(a))["scanning"] else (b, a)
        scanner.proc.kill()  # SIGKILL: no goodbye; Postgres releases its lock
        await scanner.proc.wait()

        async def survivor_scans() -> bool:
            return bool((await supervisor(survivor))["scanning"])

        await wait_until(survivor_scans, within=WITHIN_S)
        async with user(survivor) as owner, worker(survivor) as work:
            job = await silent_stale_job(owner, work, postgres_dsn)
            paused = await owner.events.wait_for_job_event(job["id"], "job:paused", WITHIN_S)
            assert paused["data"] == {"reason": "stalled"}


async def test_after_a_redis_restart_both_recover_and_a_client_fills_its_gap_by_replay(
    postgres_dsn: str, private_redis: RedisServer, redis_channel: str
) -> None:
    async with (
        two_instances(bus_env(postgres_dsn, private_redis.url, redis_channel)) as (a, b),
        user(a) as owner,
        worker(b) as work,
    ):
        job = await running_job(owner, work)
        await owner.ok("job:subscribe", {"job_id": job["id"]})
        await progress(work, job, 10)
        assert await received(owner, job["id"], 3, WITHIN_S) == [1, 2, 3]

        await private_redis.stop()
        for web in (a, b):
            await wait_until(status_is(web.url, 503), within=WITHIN_S)
        for value in (20, 30):  # stored on B, lost for A's client
            await progress(work, job, value)
        assert seqs(owner, job["id"]) == [1, 2, 3]

        await private_redis.start()
        for web in (a, b):
            await wait_until(status_is(web.url, 200), within=WITHIN_S)
        # The latest event is sent again after the outage: the client sees the gap (4 is
        # missing) without waiting for the job's next event, and fills it by replay.
        assert (await received(owner, job["id"], 4, WITHIN_S))[:4] == [1, 2, 3, 5]
        ack = await owner.ok(
            "job:subscribe", {"job_id": job["id"], "after_seq": 3, "epoch": job["epoch"]}
        )
        assert ack["recovered"] is True
        assert [event["seq"] for event in ack["events"]] == [4, 5]
        assert [event["data"]["progress"] for event in ack["events"]] == [20.0, 30.0]
        # Cross-instance delivery goes on.
        await progress(work, job, 40)
        await owner.events.wait_for(lambda _: 6 in seqs(owner, job["id"]), WITHIN_S)


async def test_an_instance_started_while_redis_is_down_serves_locally_and_gets_ready(
    postgres_dsn: str, private_redis: RedisServer, redis_channel: str
) -> None:
    await private_redis.stop()
    port = free_port()
    env = {
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "JWT_SECRET": SECRET,
        **bus_env(postgres_dsn, private_redis.url, redis_channel),
    }
    proc = await spawn("web-no-redis", ["-m", "server"], env)
    web = WebProcess(proc=proc, url=f"http://127.0.0.1:{port}")
    try:
        await wait_until(_alive(web), within=WITHIN_S)
        assert await readyz(web.url) == 503
        async with user(web) as owner, worker(web) as work:
            job = await running_job(owner, work)
            await progress(work, job, 50)
            assert await received(owner, job["id"], 3, WITHIN_S) == [1, 2, 3]
            assert await readyz(web.url) == 503
            await private_redis.start()
            await wait_until(status_is(web.url, 200), within=WITHIN_S)
    finally:
        await stop(proc)


async def test_redis_without_a_database_stops_the_process_with_one_line() -> None:
    proc: Proc = await spawn(
        "web-memory-redis",
        ["-m", "server"],
        {"JWT_SECRET": SECRET, "REDIS_URL": "redis://127.0.0.1:6379/0", "DATABASE_URL": ""},
    )
    try:
        assert await proc.wait(WITHIN_S) == 2
        lines = proc.output().strip().splitlines()
        assert lines == [
            "jobspine: REDIS_URL: needs DATABASE_URL too "
            "(instances cannot share the in-memory store)"
        ]
    finally:
        await stop(proc)


def _alive(web: WebProcess) -> Any:
    async def check() -> bool:
        if web.proc.returncode is not None:
            raise AssertionError(f"{web.proc.name} exited:\n{web.proc.output()}")
        with contextlib.suppress(aiohttp.ClientError):
            async with aiohttp.ClientSession() as http, http.get(f"{web.url}/healthz") as response:
                return response.status == 200
        return False

    return check
