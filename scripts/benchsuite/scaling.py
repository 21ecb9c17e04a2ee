"""Events per second delivered to clients, and web CPU per delivery, across instances.

Why: with ``REDIS_URL`` every event crosses Redis pub/sub to reach clients on another
instance. This measures what that path delivers, next to one instance without Redis and one
instance with Redis (whose emits then also publish, for nobody).

What it does, on loopback with real processes: creates a scratch Postgres database, starts
``python -m server`` instances as subprocesses (same database, Redis on a channel of this
run's own), connects N user clients that subscribe to J jobs, and starts a load generator
(``scripts/bench scaling --generate``, a subprocess) whose worker socket claims the J jobs and
reports E progress events on each (one call at a time per job, J jobs at once), then
completes them. The clock runs from the generator's first call to the last event received
by the last client. Each client checks its events arrive in seq order, each once.

Scenarios (clients on instance A, but in ``spread-N``):

- ``single``: one instance, no Redis; the worker on A.
- ``single+redis``: one instance with Redis; the worker on A.
- ``cross``: two instances with Redis; the worker on B, so every event crosses Redis.
- ``spread-2``, ``spread-4``: N instances with Redis, ``--clients`` clients on each, those of
  instance i watching the jobs of their own user (``--jobs`` / N jobs); the worker on the
  first. Each event reaches ``--clients`` clients as in ``single``, so ``web cpu
  ms/delivery`` against ``single`` is the cost of the cross-instance path at N instances
  (each instance hears only the rooms its clients are in: docs/redis.md).
- ``layout-2``, ``layout-4``: one instance without Redis holding the clients of ``spread-N``
  (N users' groups of ``--clients``, each watching its user's ``--jobs`` / N jobs). Against
  ``single`` it is the cost of that client layout alone (N times the sockets, each sent 1/N
  of the events, so fewer frames per write); against it, ``spread-N`` is the cost of the
  instances and Redis alone.

Besides the rates, it reports the CPU time the web process(es) spent per event (user and
system, from ``/proc``): on a shared machine the rates move with other load, the CPU cost
much less. Prints one JSON line per scenario, then a table (and medians when repeated).
Usage::

    scripts/bench scaling                # defaults: about a minute
    scripts/bench scaling --tiny         # a few seconds
    scripts/bench scaling --clients 8 --jobs 8 --events 500

Postgres comes from ``--dsn``, else ``JOBSPINE_TEST_DATABASE_URL``, else
``postgresql://postgres@127.0.0.1:5432/postgres`` (a role that may create databases); Redis
from ``--redis``, else ``JOBSPINE_TEST_REDIS_URL``, else ``redis://127.0.0.1:6379/0``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

import aiohttp
import socketio

from scripts.benchsuite import cli
from scripts.benchsuite.report import Column, emit, table, text
from scripts.benchsuite.servers import Server, jobspine
from tests.support.databases import BASE_DSN_ENV, base_dsn, scratch_database
from tests.support.processes import ROOT, cpu_seconds, token

DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
OWNER = "bench"
START_TIMEOUT_S = 60.0
SCENARIOS = ("single", "single+redis", "cross", "spread-2", "spread-4", "layout-2", "layout-4")
RUN_TIMEOUT_S = 120.0


def bearer(sub: str, role: str = "user") -> str:
    return token(sub, role)


def web_instance(name: str, env: Mapping[str, str]) -> AbstractAsyncContextManager[Server]:
    """``python -m server`` on a free port (every progress report a live event, no call
    limits), once ``/readyz`` says 200."""
    return jobspine(name, **env)


# -- the receiving side (this process) -------------------------------------------------------


class Receiver:
    """One user client: counts the events of the bench's jobs, checks order and uniqueness."""

    def __init__(self, expected: int) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        self.expected = expected
        self.received = 0
        self.out_of_order = 0
        self.duplicates = 0
        self.done = asyncio.Event()
        self._last_seq: dict[str, int] = {}
        self.sio.on("job:progress", self._on_event)
        self.sio.on("job:completed", self._on_event)
        self.sio.on("job:started", self._on_seq_only)

    async def _on_seq_only(self, event: dict[str, Any]) -> None:
        self._check(event)

    async def _on_event(self, event: dict[str, Any]) -> None:
        self._check(event)
        self.received += 1
        if self.received >= self.expected:
            self.done.set()

    def _check(self, event: dict[str, Any]) -> None:
        job_id, seq = event["job_id"], event["seq"]
        last = self._last_seq.get(job_id)
        if last is not None:
            if seq <= last:
                self.duplicates += 1
            elif seq != last + 1:
                self.out_of_order += 1
        self._last_seq[job_id] = max(seq, last or 0)


async def create_jobs(url: str, count: int, owner: str = OWNER) -> list[str]:
    headers = {"Authorization": f"Bearer {bearer(owner)}"}
    async with aiohttp.ClientSession() as http:
        ids = []
        for _ in range(count):
            body = {"type": "bench", "input": {}}
            async with http.post(f"{url}/api/jobs", json=body, headers=headers) as response:
                assert response.status == 201, await response.text()
                ids.append((await response.json())["id"])
        return ids


async def subscribed(url: str, owner: str, jobs: Sequence[str], events: int) -> Receiver:
    """A client of ``owner`` on ``url`` watching ``jobs`` (``events`` progress each)."""
    receiver = Receiver(len(jobs) * (events + 1))  # progress events and the completion
    await receiver.sio.connect(url, auth={"token": bearer(owner)}, transports=["websocket"])
    for job_id in jobs:
        ack = await receiver.sio.call("job:subscribe", {"job_id": job_id}, timeout=30)
        assert ack.get("ok"), ack
    return receiver


async def run_scenario(
    name: str, clients_on: Server, worker_on: Server, args: argparse.Namespace
) -> dict[str, Any]:
    jobs = await create_jobs(clients_on.url, args.jobs)
    receivers = [
        await subscribed(clients_on.url, OWNER, jobs, args.events) for _ in range(args.clients)
    ]
    return await drive(name, [clients_on, worker_on], worker_on, receivers, args.jobs, args)


async def run_spread(
    name: str, servers: Sequence[Server], args: argparse.Namespace
) -> dict[str, Any]:
    """``--clients`` clients on each of N instances, those of instance i watching the jobs
    of owner ``bench-i`` (``--jobs`` / N of them); the worker on the first instance. Each
    event then reaches ``--clients`` clients, as in ``single``: what grows with N is only
    the cross-instance path (each instance hears only the jobs its clients watch).
    ``servers`` may name one instance N times (``layout-N``)."""
    receivers, per_instance = [], args.jobs // len(servers)
    for index, server in enumerate(servers):
        owner = f"{OWNER}-{index}"
        jobs = await create_jobs(servers[0].url, per_instance, owner)
        for _ in range(args.clients):
            receivers.append(await subscribed(server.url, owner, jobs, args.events))
    return await drive(name, servers, servers[0], receivers, per_instance * len(servers), args)


async def drive(
    name: str,
    servers: Sequence[Server],
    worker_on: Server,
    receivers: Sequence[Receiver],
    jobs: int,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Run the load generator on ``jobs`` jobs through ``worker_on`` until every receiver
    has its events; the web CPU of ``servers`` per event and per delivery."""
    # The instance the worker calls first, then the others (their clients' events only).
    pids = list(dict.fromkeys([worker_on.pid, *(server.pid for server in servers)]))

    def web_cpu() -> list[float]:
        return [cpu_seconds(pid) for pid in pids]

    events = jobs * (args.events + 1)  # progress events and the completion
    try:
        generator = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "scripts.benchsuite",
            "scaling",
            "--generate",
            worker_on.url,
            "--jobs",
            str(jobs),
            "--events",
            str(args.events),
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
        )
        # The generator prints its start time (time.time()) once connected and claiming.
        assert generator.stdout is not None
        started_line = await asyncio.wait_for(generator.stdout.readline(), START_TIMEOUT_S)
        started_at = json.loads(started_line)["started_at"]
        cpu_before = web_cpu()
        await asyncio.wait_for(asyncio.gather(*(r.done.wait() for r in receivers)), RUN_TIMEOUT_S)
        finished_at = time.time()
        cpu_after = web_cpu()
        cpu_by_instance = [end - start for start, end in zip(cpu_before, cpu_after, strict=True)]
        server_cpu = sum(cpu_by_instance)
        report = json.loads(await generator.stdout.readline())
        await generator.wait()
    finally:
        for receiver in receivers:
            await receiver.sio.disconnect()
    seconds = finished_at - started_at
    deliveries = sum(r.received for r in receivers)
    return {
        "scenario": name,
        "clients": args.clients,
        "jobs": jobs,
        "events_per_job": args.events,
        "events": events,
        "deliveries": deliveries,
        "seconds": round(seconds, 3),
        "events_per_s": round(events / seconds, 1),
        "deliveries_per_s": round(deliveries / seconds, 1),
        "worker_calls_per_s": round(report["calls"] / report["seconds"], 1),
        "web_processes": len(pids),
        "web_cpu_s": round(server_cpu, 3),
        "web_cpu_s_by_instance": [round(cpu, 3) for cpu in cpu_by_instance],
        "web_cpu_ms_per_event": round(1000 * server_cpu / events, 3),
        "web_cpu_ms_per_delivery": round(1000 * server_cpu / deliveries, 4),
        "lost": sum(r.expected for r in receivers) - deliveries,
        "out_of_order": sum(r.out_of_order for r in receivers),
        "duplicates": sum(r.duplicates for r in receivers),
    }


# -- the load generator (a subprocess) -------------------------------------------------------


async def generate(url: str, jobs: int, events: int) -> None:
    """Claim ``jobs`` jobs, report ``events`` progress on each (J at once), complete them."""
    sio = socketio.AsyncClient(reconnection=False)
    await sio.connect(
        url,
        auth={"token": bearer("bench-worker", "worker")},
        namespaces=["/workers"],
        transports=["websocket"],
    )
    started = time.time()
    print(json.dumps({"started_at": started}), flush=True)
    calls = 0

    async def call(event: str, payload: dict[str, Any]) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        ack: dict[str, Any] = await sio.call(event, payload, namespace="/workers", timeout=60)
        if not ack.get("ok"):
            raise SystemExit(f"{event} refused: {ack}")
        return ack

    async def run(job_id: str, lease: str) -> None:
        fenced = {"job_id": job_id, "lease": lease}
        for n in range(1, events + 1):
            await call("progress", {**fenced, "progress": 100 * n / events, "step": f"{n}"})
        await call("complete", {**fenced, "result": {"events": events}})

    claimed = [await call("claim", {"types": ["bench"]}) for _ in range(jobs)]
    await asyncio.gather(*(run(c["job"]["id"], c["lease"]) for c in claimed))
    seconds = time.time() - started
    print(json.dumps({"calls": calls, "seconds": seconds}), flush=True)
    await sio.disconnect()


# -- main ------------------------------------------------------------------------------------


async def bench(args: argparse.Namespace) -> list[dict[str, Any]]:
    results = []
    channel = f"jobspine-bench-{uuid.uuid4().hex[:8]}"
    redis_env = {"REDIS_URL": args.redis, "REDIS_CHANNEL": channel}
    for _ in range(args.repeat):
        async with scratch_database("bench_scaling", base=args.dsn) as dsn:
            base = {"DATABASE_URL": dsn}
            if "single" in args.scenarios:
                async with web_instance("single", base) as a:
                    results.append(await run_scenario("single", a, a, args))
            if "single+redis" in args.scenarios:
                async with web_instance("single+redis", {**base, **redis_env}) as a:
                    results.append(await run_scenario("single+redis", a, a, args))
            if "cross" in args.scenarios:
                async with (
                    web_instance("cross-a", {**base, **redis_env}) as a,
                    web_instance("cross-b", {**base, **redis_env}) as b,
                ):
                    results.append(await run_scenario("cross", a, b, args))
            for name in (n for n in args.scenarios if n.startswith("layout-")):
                count = int(name.removeprefix("layout-"))
                async with web_instance(name, base) as a:
                    results.append(await run_spread(name, [a] * count, args))
            for name in (n for n in args.scenarios if n.startswith("spread-")):
                count = int(name.removeprefix("spread-"))
                async with contextlib.AsyncExitStack() as stack:
                    servers = [
                        await stack.enter_async_context(
                            web_instance(f"{name}-{i}", {**base, **redis_env})
                        )
                        for i in range(count)
                    ]
                    results.append(await run_spread(name, servers, args))
    return results


COLUMNS = (
    text("scenario"),
    Column("events_per_s", "events/s"),
    Column("deliveries_per_s", "deliveries/s"),
    Column("seconds", "seconds"),
    Column("web_cpu_ms_per_event", "web cpu ms/event"),
    Column("web_cpu_ms_per_delivery", "web cpu ms/delivery"),
    Column("lost", "lost"),
)


def medians(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per scenario with the median of each number over its runs."""
    rows = []
    for name in dict.fromkeys(r["scenario"] for r in results):
        runs = [r for r in results if r["scenario"] == name]
        row: dict[str, Any] = {"scenario": f"{name} (median)"}
        for column in COLUMNS[1:]:
            row[column.key] = statistics.median(r[column.key] for r in runs)
        rows.append(row)
    return rows


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = cli.parser("scaling", __doc__)
    parser.add_argument("--dsn", default=base_dsn(), help=f"default: ${BASE_DSN_ENV}")
    parser.add_argument(
        "--redis", default=os.environ.get("JOBSPINE_TEST_REDIS_URL") or DEFAULT_REDIS
    )
    parser.add_argument("--clients", type=int, default=8, help="subscribed user clients on A")
    parser.add_argument("--jobs", type=int, default=16, help="jobs driven at once")
    parser.add_argument("--events", type=int, default=200, help="progress events per job")
    parser.add_argument("--repeat", type=int, default=1, help="runs of the scenarios")
    parser.add_argument(
        "--scenarios",
        type=lambda value: value.split(","),
        default=list(SCENARIOS),
        help="comma-separated, from " + ",".join(SCENARIOS),
    )
    parser.add_argument("--tiny", action="store_true", help="2 clients, 2 jobs, 50 events")
    parser.add_argument("--generate", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.tiny:
        args.clients, args.jobs, args.events = 2, 2, 50
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    if args.generate:
        asyncio.run(generate(args.generate, args.jobs, args.events))
        return 0
    results = [emit("scaling", result) for result in asyncio.run(bench(args))]
    rows = results + (medians(results) if args.repeat > 1 else [])
    print(table(rows, COLUMNS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
