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
from scripts.benchsuite.context import Context, LoopStats, closed_loop, median_run
from scripts.benchsuite.servers import Server
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
    """Raw, memory and Postgres take turns for ``rounds`` rounds; each reports its median
    round, so that a burst of other load on the machine does not favour one of them."""
    n, sizes = ctx.sizes.in_flight, ctx.sizes
    fake = [RunningJob(job_id=f"00000000-0000-4000-8000-{i:012d}", lease="x") for i in range(n)]
    targets: dict[str, tuple[Server, list[RunningJob]]] = {"raw": (ctx.raw, fake)}
    for store, server in ctx.jobspine.items():
        jobs = await running_jobs(ctx.http, server.url, n, type="bench.heartbeat")
        targets[store] = (server, jobs)
    runs: dict[str, list[LoopStats]] = {name: [] for name in targets}
    for _ in range(sizes.rounds):
        for name, (server, jobs) in targets.items():
            runs[name].append(await _rate(ctx, server, jobs))
    params = {
        "in_flight": n,
        "sockets": sizes.sockets,
        "seconds": sizes.seconds,
        "rounds": sizes.rounds,
    }
    raw_stats = median_run(runs["raw"])
    raw = raw_stats.rate
    results = []
    for name, stats_list in runs.items():
        stats = median_run(stats_list)
        share = ratio(stats.rate, raw)
        jobspine = name != "raw"
        results.append(
            Result(
                measure="a",
                name="heartbeat_rps",
                store=name,
                value=stats.rate,
                unit="rpc/s",
                raw=raw,
                ratio=share,
                params=params,
                goal=f">= {GOAL:.0%} of raw" if jobspine else None,
                met=(share is not None and share >= GOAL) if jobspine else None,
                extra={**stats.cpu(), "rounds_rps": [round(s.rate) for s in stats_list]},
            )
        )
    return results
