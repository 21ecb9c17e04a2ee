"""Two apps in this process over one Postgres database and one Redis channel, as two web
processes would be (``tests/test_scaling.py`` runs real processes), and what tests of the
Redis bus ask of them."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping
from typing import Any

from tests.support.jobs import wait_until
from tests.support.server import TIMEOUT_S, LiveServer, SocketClient, StartServer

#: Generous: the machine is shared; a healthy run takes a second or two.
HEAL_WITHIN_S = 30.0
#: ``REDIS_SIGNING_KEY`` values (32 bytes) of instances that trust each other, or do not.
SIGNING_KEY = "k" * 32
OTHER_SIGNING_KEY = "o" * 32


def bus_env(dsn: str, url: str, channel: str, **extra: str) -> dict[str, str]:
    # Every progress report is an event here, whatever the live rate limit.
    return {
        "DATABASE_URL": dsn,
        "REDIS_URL": url,
        "REDIS_CHANNEL": channel,
        "PROGRESS_EVENTS_PER_S": "0",
        **extra,
    }


async def two_instances(
    start_server: StartServer, env: Mapping[str, str], other_env: Mapping[str, str] | None = None
) -> tuple[LiveServer, LiveServer]:
    """Two ready apps; the second with ``other_env`` when given."""
    first, second = await asyncio.gather(
        start_server(env=env), start_server(env=env if other_env is None else other_env)
    )
    for server in (first, second):
        await wait_until(functools.partial(is_ready, server), within=HEAL_WITHIN_S)
    return first, second


async def readyz(server: LiveServer) -> tuple[int, Any]:
    return await server.rest("GET", "/readyz")


async def is_ready(server: LiveServer) -> bool:
    return (await readyz(server))[0] == 200


async def not_ready(server: LiveServer) -> bool:
    return (await readyz(server))[0] == 503


async def metric_values(server: LiveServer) -> dict[str, float]:
    """The unlabelled samples of ``/metrics``."""
    status, text = await server.rest("GET", "/metrics")
    assert status == 200
    samples = (line.split(" ") for line in text.splitlines() if not line.startswith("#"))
    return {sample[0]: float(sample[1]) for sample in samples if len(sample) == 2}


async def running_job(owner: SocketClient, worker: SocketClient) -> dict[str, Any]:
    """A job of ``owner``'s, claimed by ``worker``: its snapshot and ``lease``."""
    job = (await owner.ok("job:create", {"type": "research", "input": {}}))["job"]
    claim = await worker.ok("claim", {"types": ["research"]})
    assert claim["job"]["id"] == job["id"]
    return {**job, "lease": claim["lease"]}


def seqs(client: SocketClient, job_id: str) -> list[int]:
    """The seqs of ``job_id``'s events ``client`` received live, in order of arrival."""
    return [event["seq"] for event in client.events.of_job(job_id)]


async def progress(worker: SocketClient, job: Mapping[str, Any], value: float) -> None:
    await worker.ok("progress", {"job_id": job["id"], "lease": job["lease"], "progress": value})


async def received(
    client: SocketClient, job_id: str, count: int, within: float = TIMEOUT_S
) -> list[int]:
    """The seqs of ``job_id``'s events once ``client`` has received at least ``count``."""
    await client.events.wait_for(lambda _: len(seqs(client, job_id)) >= count, within)
    return seqs(client, job_id)
