"""a. Heartbeat RPCs per second through ``/workers`` with a fixed number in flight.

Each of ``in_flight`` loops heartbeats its own running job back to back, spread over a few
worker sockets; the raw server answers the same calls with a bare ack.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from scripts.benchsuite.common import (
    Result,
    RunningJob,
    checked,
    ratio,
    running_jobs,
    worker_auth,
)
from scripts.benchsuite.context import Context, LoopStats, closed_loop
from scripts.benchsuite.processes import Server
from scripts.benchsuite.wire import WireClient

GOAL = 0.8


async def _rate(ctx: Context, server: Server, jobs: list[RunningJob]) -> LoopStats:
    sizes = ctx.sizes
    sockets = [
        await WireClient.connect(ctx.http, server.url, "/workers", worker_auth())
        for _ in range(sizes.sockets)
    ]
    try:
        loops: list[Callable[[], Awaitable[object]]] = []
        for i, job in enumerate(jobs):
            socket, payload = sockets[i % len(sockets)], {"job_id": job.job_id, "lease": job.lease}

            async def beat(socket: WireClient = socket, payload: dict[str, str] = payload) -> None:
                checked(await socket.call("heartbeat", payload), "heartbeat")

            loops.append(beat)
        stats = await closed_loop(
            loops, seconds=sizes.seconds, warmup_s=sizes.warmup_s, server=server
        )
    finally:
        for socket in sockets:
            await socket.close()
    return stats


async def run(ctx: Context) -> list[Result]:
    n = ctx.sizes.in_flight
    fake = [RunningJob(job_id=f"00000000-0000-4000-8000-{i:012d}", lease="x") for i in range(n)]
    raw_stats = await _rate(ctx, ctx.raw, fake)
    raw = raw_stats.rate
    params = {"in_flight": n, "sockets": ctx.sizes.sockets, "seconds": ctx.sizes.seconds}
    results = [
        Result(
            measure="a",
            name="heartbeat_rps",
            store="raw",
            value=raw,
            unit="rpc/s",
            raw=raw,
            ratio=1.0,
            params=params,
            extra=raw_stats.cpu(),
        )
    ]
    for store, server in ctx.jobspine.items():
        jobs = await running_jobs(ctx.http, server.url, n, type="bench.heartbeat")
        stats = await _rate(ctx, server, jobs)
        value = stats.rate
        share = ratio(value, raw)
        results.append(
            Result(
                measure="a",
                name="heartbeat_rps",
                store=store,
                value=value,
                unit="rpc/s",
                raw=raw,
                ratio=share,
                params=params,
                goal=f">= {GOAL:.0%} of raw",
                met=share is not None and share >= GOAL,
                extra=stats.cpu(),
            )
        )
    return results
