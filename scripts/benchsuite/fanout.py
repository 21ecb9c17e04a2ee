"""b. Progress fan-out: progress RPCs per second ingested and delivered to subscribed clients,
then the latency from a worker's call to a client's receipt at half that rate.

Rate: ``in_flight`` loops call ``progress`` back to back over ``fan_jobs`` jobs; every
subscriber is subscribed to every job, so each call is one event to each subscriber. The
rate counts a call once every subscriber has its event: calls during the window, divided by
the time from the window's start until the last of their events arrived.

Latency: calls paced at half of jobspine's maximum rate of the store (open loop: on a
schedule, not waiting for acks); each event's receipt time minus its call's send time, over
every subscriber. The raw server runs the same schedule.

Progress stays at 50 and ``step`` carries the call's number, so calls on one job may be
handled in any order without ``invalid_progress``, and each event names its call.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any

import attrs

from scripts.benchsuite.common import (
    Result,
    RunningJob,
    Series,
    checked,
    percentile,
    share_of_raw,
    times_raw,
    worker_auth,
)
from scripts.benchsuite.context import (
    Context,
    LoopStats,
    Sizes,
    alternate_rounds,
    median_run,
    rate_targets,
    rounds_extra,
)
from scripts.benchsuite.readers import ProgressReaders
from scripts.benchsuite.servers import Server
from scripts.benchsuite.wire import WireClient

RATE_GOALS = {"memory": 0.6, "postgres": 0.4}
P99_GOAL = 2.0
#: How long the last events of a window may take to arrive before the run is called broken.
DRAIN_WITHIN_S = 60.0
PROGRESS = 50.0


async def _readers(ctx: Context, server: Server, jobs: list[RunningJob]) -> ProgressReaders:
    return await ProgressReaders.subscribed(ctx.http, server.url, jobs, ctx.sizes.subscribers)


async def _workers(ctx: Context, server: Server) -> list[WireClient]:
    return [
        await WireClient.connect(ctx.http, server.url, "/workers", worker_auth())
        for _ in range(ctx.sizes.sockets)
    ]


def _payload(job: RunningJob, n: int) -> dict[str, object]:
    return {"job_id": job.job_id, "lease": job.lease, "progress": PROGRESS, "step": f"s{n}"}


async def max_rate(ctx: Context, server: Server, jobs: list[RunningJob]) -> LoopStats:
    sizes = ctx.sizes
    subscribers = await _readers(ctx, server, jobs)
    workers = await _workers(ctx, server)
    counting, stop, counted, issued = False, False, 0, 0
    try:

        def loop(i: int) -> Callable[[], Coroutine[Any, Any, None]]:
            socket, job = workers[i % len(workers)], jobs[i % len(jobs)]

            async def run() -> None:
                nonlocal counted, issued
                while not stop:
                    issued += 1
                    checked(await socket.call("progress", _payload(job, issued)), "progress")
                    if counting:
                        counted += 1

            return run

        tasks = [asyncio.create_task(loop(i)()) for i in range(sizes.in_flight)]
        try:
            await asyncio.sleep(sizes.warmup_s)
            counting, started, before = True, time.perf_counter(), subscribers.received
            cpu0, client0 = server.cpu_seconds(), time.process_time()
            await asyncio.sleep(sizes.seconds)
            stop = True
            await asyncio.wait_for(asyncio.gather(*tasks), DRAIN_WITHIN_S)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        # Every call acked so far, counted or not, is one event per subscriber.
        await subscribers.until(issued * len(subscribers.sockets), DRAIN_WITHIN_S)
        elapsed = time.perf_counter() - started
        server_cpu, client_cpu = server.cpu_seconds() - cpu0, time.process_time() - client0
        delivered = subscribers.received - before
    finally:
        await subscribers.close()
        for socket in workers:
            await socket.close()
    # A call counts once every subscriber has its event.
    calls = min(counted, delivered // len(subscribers.sockets))
    return LoopStats(
        calls=calls, elapsed_s=elapsed, server_cpu_s=server_cpu, client_cpu_s=client_cpu
    )


@attrs.frozen
class Latency:
    """One paced run: percentiles of every delivery's latency (seconds), how many there were,
    and the busy fraction of one core each side spent from the first call to the last
    delivery: a side near 1.0 was queueing its work, and its latencies say so."""

    p50: float
    p99: float
    deliveries: int
    server_cpu: float
    client_cpu: float

    def extra(self, prefix: str = "") -> dict[str, float]:
        return {
            f"{prefix}p50_ms": round(self.p50 * 1e3, 3),
            f"{prefix}server_cpu": round(self.server_cpu, 2),
            f"{prefix}client_cpu": round(self.client_cpu, 2),
        }


async def _latency(ctx: Context, server: Server, jobs: list[RunningJob], rate: float) -> Latency:
    sizes = ctx.sizes
    subscribers = await _readers(ctx, server, jobs)
    workers = await _workers(ctx, server)
    sent: dict[str, float] = {}
    subscribers.sent = sent
    total = max(10, int(rate * sizes.seconds))
    pending: set[asyncio.Task[object]] = set()
    try:
        started, cpu0, client0 = time.perf_counter(), server.cpu_seconds(), time.process_time()
        for n in range(total):
            due = started + n / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            socket, job = workers[n % len(workers)], jobs[n % len(jobs)]
            sent[f"s{n}"] = time.perf_counter()
            task = asyncio.create_task(socket.call("progress", _payload(job, n)))
            pending.add(task)
            task.add_done_callback(pending.discard)
        acks = await asyncio.wait_for(asyncio.gather(*pending), DRAIN_WITHIN_S)
        for ack in acks:
            checked(ack, "progress")
        await subscribers.until(total * len(subscribers.sockets), DRAIN_WITHIN_S)
        elapsed = time.perf_counter() - started
        server_cpu, client_cpu = server.cpu_seconds() - cpu0, time.process_time() - client0
    finally:
        for task in pending:
            task.cancel()
        await subscribers.close()
        for socket in workers:
            await socket.close()
    latencies = subscribers.latencies
    return Latency(
        p50=percentile(latencies, 50),
        p99=percentile(latencies, 99),
        deliveries=len(latencies),
        server_cpu=server_cpu / elapsed,
        client_cpu=client_cpu / elapsed,
    )


def _params(sizes: Sizes) -> dict[str, object]:
    return {
        "in_flight": sizes.in_flight,
        "jobs": sizes.fan_jobs,
        "subscribers": sizes.subscribers,
        "seconds": sizes.seconds,
    }


async def run(ctx: Context) -> list[Result]:
    """The rates: raw, memory and Postgres take turns for ``rounds`` rounds (median kept);
    then the latencies of each store and of raw at that store's half rate."""
    sizes = ctx.sizes
    targets = await rate_targets(ctx, sizes.fan_jobs, "bench.fan")
    rounds = await alternate_rounds(ctx, targets, max_rate)
    rates = {name: median_run(runs).rate for name, runs in rounds.items()}
    raw_rate = rates["raw"]
    fanout = Series("b", "progress_fanout_rps", "rpc/s", {**_params(sizes), "rounds": sizes.rounds})
    results = [fanout.result("raw", raw_rate, raw_rate, extra=rounds_extra(rounds["raw"]))]
    for store in ctx.jobspine:
        server, jobs = targets[store]
        rate, goal = rates[store], share_of_raw(RATE_GOALS[store])
        results.append(fanout.result(store, rate, raw_rate, goal, rounds_extra(rounds[store])))
        paced = rate / 2
        ours = await _latency(ctx, server, jobs, paced)
        raw = await _latency(ctx, *targets["raw"], paced)
        latency_params = {**_params(sizes), "rate_rps": round(paced), "deliveries": ours.deliveries}
        latency = Series("b", "progress_latency_p99", "ms", latency_params)
        extra = {**ours.extra(), **raw.extra("raw_")}
        results.append(
            latency.result(store, ours.p99 * 1e3, raw.p99 * 1e3, times_raw(P99_GOAL), extra)
        )
    return results
