"""a. Heartbeat RPCs per second through ``/workers`` with a fixed number in flight.

Each of ``in_flight`` loops heartbeats its own running job back to back, spread over a few
worker sockets; the raw server answers the same calls with a bare ack.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from scripts.benchsuite.common import Result, RunningJob, Series, checked, share_of_raw, worker_auth
from scripts.benchsuite.context import (
    Context,
    LoopStats,
    alternate_rounds,
    closed_loop,
    median_run,
    rate_targets,
    rounds_extra,
)
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
    sizes = ctx.sizes
    targets = await rate_targets(ctx, sizes.in_flight, "bench.heartbeat")
    rounds = await alternate_rounds(ctx, targets, _rate)
    params = {
        "in_flight": sizes.in_flight,
        "sockets": sizes.sockets,
        "seconds": sizes.seconds,
        "rounds": sizes.rounds,
    }
    heartbeats = Series("a", "heartbeat_rps", "rpc/s", params)
    raw = median_run(rounds["raw"]).rate
    return [
        heartbeats.result(
            name,
            median_run(runs).rate,
            raw,
            None if name == "raw" else share_of_raw(GOAL),
            rounds_extra(runs),
        )
        for name, runs in rounds.items()
    ]
