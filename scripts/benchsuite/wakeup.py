"""Wake-up latency: median time from create to claim with an idle worker.

Runs the web app in-process (memory store, a free port) and one SDK worker that is idle
when each job is created; the latency is the job's ``started_at - created_at`` (both from
the server's clock). ``--no-push`` ignores the server's ``jobs:available`` push, which is
how every worker behaved before contract v2: it claims at its next poll.

    scripts/bench wakeup [--jobs 20] [--poll 1.0] [--no-push]
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

import aiohttp
from aiohttp import web

from jobspine_shared.wire import parse_time
from scripts.benchsuite import cli
from scripts.benchsuite.report import Column, emit, spread_columns, spread_ms, table, text
from server.app import create_app
from server.auth import mint_token
from server.config import load_settings
from tests.support.processes import free_port
from workers.sdk import JobContext, Worker, WorkerConfig, WorkerStopped

SECRET = "wakeup-bench-secret-of-at-least-32-bytes"


async def _done(ctx: JobContext) -> str:
    return "ok"


async def measure(jobs: int, poll_s: float, push: bool) -> list[float]:
    port = free_port()
    settings = load_settings(
        {"JWT_SECRET": SECRET, "PORT": str(port), "USER_CALLS_PER_S": "100000"}
    )
    runner = web.AppRunner(create_app(settings))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    url = f"http://127.0.0.1:{port}"
    worker = Worker(
        WorkerConfig(
            url=url, token=mint_token(SECRET, sub="w", role="worker"), poll_interval_s=poll_s
        )
    )
    worker.register("research", _done)
    if not push:
        worker.connection.on_push("jobs:available", lambda _: None)
    task = asyncio.create_task(worker.run())
    user = {"Authorization": f"Bearer {mint_token(SECRET, sub='u')}"}
    latencies: list[float] = []
    try:
        await worker.connection.wait_connected()
        async with aiohttp.ClientSession(headers=user) as http:
            for i in range(jobs):
                # Idle for a varying part of a poll interval, as a real queue would be.
                await asyncio.sleep(poll_s * ((i * 0.37) % 1) + 0.05)
                async with http.post(f"{url}/api/jobs", json={"type": "research"}) as answer:
                    job = await answer.json()
                while True:
                    async with http.get(f"{url}/api/jobs/{job['id']}") as answer:
                        seen = await answer.json()
                    if seen["started_at"]:
                        break
                    await asyncio.sleep(0.005)
                started, created = parse_time(seen["started_at"]), parse_time(seen["created_at"])
                latencies.append((started - created).total_seconds() * 1000)
    finally:
        worker.stop()
        with contextlib.suppress(WorkerStopped):
            await asyncio.wait_for(task, 10)
        await runner.cleanup()
    return latencies


COLUMNS = (
    text("mode"),
    Column("poll_s", "poll s"),
    Column("jobs", "jobs"),
    *spread_columns("median", "max"),
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = cli.parser("wakeup", __doc__)
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--poll", type=float, default=1.0, help="the worker's poll interval")
    parser.add_argument("--no-push", action="store_true", help="ignore jobs:available (v1)")
    parser.add_argument("--tiny", action="store_true", help="3 jobs, 0.2 s poll")
    args = parser.parse_args(argv)
    if args.tiny:
        args.jobs, args.poll = 3, 0.2
    latencies = asyncio.run(measure(args.jobs, args.poll, not args.no_push))
    result = {
        "mode": "poll only (v1)" if args.no_push else "jobs:available push",
        "poll_s": args.poll,
        "jobs": len(latencies),
        **spread_ms(latencies, "median", "max"),
    }
    print(table([emit("wakeup", result)], COLUMNS))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
