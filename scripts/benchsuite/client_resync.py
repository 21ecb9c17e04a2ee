"""Python client re-sync: time from a reconnect to ``live`` with N watched jobs.

Runs the web app in-process (memory store, a free port), creates N jobs (three events each),
watches them all with one ``JobspineClient``, and for each round drops the connection from
the client's side while two of the jobs get one more event, then times the re-sync: a new
socket, one ``job:sync`` with every cursor (in calls of 500), one ``job:subscribe`` per job,
until the status is ``live`` again with both missed events applied.

    scripts/bench client-resync [--jobs 1 100 500] [--rounds 7] [--tiny]
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from jobspine_client import JobspineClient, Status
from scripts.benchsuite import cli
from scripts.benchsuite.report import Column, emit, spread_columns, spread_ms, table
from tests.support.client_py import GatedSockets, raw_worker
from tests.support.server import running_server

ENV = {"BACKLOG_SIZE": "200", "PROGRESS_EVENTS_PER_S": "0"}


async def _until(check: Callable[[], bool], within_s: float = 120.0) -> None:
    deadline = time.monotonic() + within_s
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("the client did not get there")
        await asyncio.sleep(0.0005)


async def measure(jobs: int, rounds: int) -> list[float]:
    """Seconds from reconnecting to live, one per round."""
    async with running_server(ENV) as server:
        sockets = GatedSockets()
        client = JobspineClient(
            server.url,
            server.token("bench"),
            socket_factory=sockets,
            reconnect_initial_s=0.001,
            reconnect_max_s=0.001,
        )
        await client.connect()
        created = [await client.create("bench") for _ in range(jobs)]
        watches = [client.watch(job.id) for job in created]
        for watch in watches:
            await watch.ready
        timings = []
        async with raw_worker(server.url, server.token("w", "worker")) as worker:
            leases = [(await worker.ok("claim", {}))["lease"] for _ in created[:2]]
            await _until(lambda: all(w.last_seq == 2 for w in watches[:2]))
            for progress in range(1, rounds + 1):
                sockets.gate.clear()
                await sockets.drop()
                await _until(lambda: client.status is Status.RECONNECTING)
                for job, lease in zip(created, leases, strict=False):
                    payload = {"job_id": job.id, "lease": lease, "progress": progress}
                    await worker.ok("progress", payload)
                started = time.perf_counter()
                sockets.gate.set()
                await _until(lambda: client.status is Status.LIVE)
                timings.append(time.perf_counter() - started)
                missed = 2 + progress
                assert all(w.last_seq == missed for w in watches[: len(leases)])
        await client.close()
        return timings


COLUMNS = (
    Column("jobs", "watched jobs"),
    Column("rounds", "rounds"),
    *spread_columns("median", "min", "max"),
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = cli.parser("client-resync", __doc__)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 100, 500])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--tiny", action="store_true", help="2 and 10 jobs, 2 rounds")
    args = parser.parse_args(argv)
    if args.tiny:
        args.jobs, args.rounds = [2, 10], 2
    rows = []
    for jobs in args.jobs:
        ms = [t * 1000 for t in asyncio.run(measure(jobs, args.rounds))]
        result = {"jobs": jobs, "rounds": len(ms), **spread_ms(ms, "median", "min", "max")}
        rows.append(emit("client-resync", result))
    print(table(rows, COLUMNS))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
