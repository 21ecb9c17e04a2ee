"""What a measure runs against: the sizes of this run and the servers already started."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import attrs

from scripts.benchsuite.common import RunningJob, running_jobs
from scripts.benchsuite.servers import Server

#: A server under a rate measure, and the running jobs its loops report on.
Target = tuple[Server, list[RunningJob]]


@attrs.frozen(kw_only=True)
class Sizes:
    """The sizes of one run (:data:`FULL` or :data:`SMOKE`)."""

    seconds: float
    #: Rate measures alternate raw and jobspine this many times and keep the median.
    rounds: int
    warmup_s: float
    in_flight: int
    sockets: int
    fan_jobs: int
    subscribers: int
    scan_jobs: int
    scan_running: int
    scan_stale: int
    scan_repeats: int
    hot_rounds: int
    replay_events: int
    replay_calls: int
    idle_counts: tuple[int, ...]
    idle_warm: int


# fmt: off
FULL = Sizes(
    seconds=3.0, rounds=3, warmup_s=0.5, in_flight=50, sockets=5,  # a and b
    fan_jobs=10, subscribers=10,  # b
    scan_jobs=100_000, scan_running=10_000, scan_stale=20, scan_repeats=50, hot_rounds=3,  # c
    replay_events=200, replay_calls=200,  # d
    idle_counts=(1000, 5000), idle_warm=20,  # e
)
#: ``--smoke``: every measure in seconds (a replay returns as many events).
SMOKE = attrs.evolve(
    FULL,
    seconds=0.3, rounds=1, warmup_s=0.1, in_flight=10, sockets=2,  # a and b
    fan_jobs=2, subscribers=3,  # b
    scan_jobs=2000, scan_running=200, scan_stale=5, scan_repeats=3, hot_rounds=1,  # c
    replay_calls=5,  # d
    idle_counts=(30, 60), idle_warm=10,  # e
)
# fmt: on


@attrs.define(kw_only=True)
class Context:
    sizes: Sizes
    http: aiohttp.ClientSession
    raw: Server
    #: jobspine servers by store name: ``memory`` and ``postgres``.
    jobspine: dict[str, Server]
    #: A maintenance database URL of the Postgres server (scratch databases go beside it).
    admin_dsn: str


@attrs.frozen
class LoopStats:
    """What a closed-loop run did in its counted window, and the CPU each side spent."""

    calls: int
    elapsed_s: float
    server_cpu_s: float
    client_cpu_s: float

    @property
    def rate(self) -> float:
        return self.calls / self.elapsed_s

    def cpu(self) -> dict[str, float]:
        """Busy fraction of one core per side, and the server's CPU microseconds per call:
        a server near 1.0 is the bottleneck; a client near 1.0 means the load generator is."""
        return {
            "server_cpu": round(self.server_cpu_s / self.elapsed_s, 2),
            "client_cpu": round(self.client_cpu_s / self.elapsed_s, 2),
            "server_us_per_call": round(self.server_cpu_s / max(self.calls, 1) * 1e6, 1),
        }


def median_run(runs: list[LoopStats]) -> LoopStats:
    """The run with the median rate (of an odd number of rounds, the middle one)."""
    return sorted(runs, key=lambda stats: stats.rate)[len(runs) // 2]


def rounds_extra(runs: list[LoopStats]) -> dict[str, Any]:
    """The ``extra`` of a rate's result: its median round's CPU and every round's rate."""
    return {**median_run(runs).cpu(), "rounds_rps": [round(stats.rate) for stats in runs]}


async def rate_targets(ctx: Context, count: int, job_type: str) -> dict[str, Target]:
    """Raw, with made-up jobs (the raw server answers any), then each jobspine store with
    ``count`` running jobs of type ``job_type.<store>``."""
    fake = [RunningJob(job_id=f"00000000-0000-4000-8000-{i:012d}", lease="x") for i in range(count)]
    targets: dict[str, Target] = {"raw": (ctx.raw, fake)}
    for store, server in ctx.jobspine.items():
        jobs = await running_jobs(ctx.http, server.url, count, type=f"{job_type}.{store}")
        targets[store] = (server, jobs)
    return targets


async def alternate_rounds(
    ctx: Context,
    targets: dict[str, Target],
    measure: Callable[[Context, Server, list[RunningJob]], Awaitable[LoopStats]],
) -> dict[str, list[LoopStats]]:
    """``measure`` of every target in turn, ``rounds`` times: a burst of other load on the
    machine then falls on every target's rounds alike, and the median round is kept."""
    runs: dict[str, list[LoopStats]] = {name: [] for name in targets}
    for _ in range(ctx.sizes.rounds):
        for name, (server, jobs) in targets.items():
            runs[name].append(await measure(ctx, server, jobs))
    return runs


async def closed_loop(
    loops: list[Callable[[], Awaitable[object]]],
    *,
    seconds: float,
    warmup_s: float,
    server: Server,
) -> LoopStats:
    """Run every loop's call back to back; what was done after the warm-up, in ``seconds``."""
    counting = False
    done = 0
    stop = False

    async def run(call: Callable[[], Awaitable[object]]) -> None:
        nonlocal done
        while not stop:
            await call()
            if counting:
                done += 1

    tasks = [asyncio.create_task(run(call)) for call in loops]
    try:
        await asyncio.sleep(warmup_s)
        counting = True
        started, cpu0, client0 = time.perf_counter(), server.cpu_seconds(), time.process_time()
        await asyncio.sleep(seconds)
        counted, elapsed = done, time.perf_counter() - started
        stats = LoopStats(
            calls=counted,
            elapsed_s=elapsed,
            server_cpu_s=server.cpu_seconds() - cpu0,
            client_cpu_s=time.process_time() - client0,
        )
        stop = True
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return stats
