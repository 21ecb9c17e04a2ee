"""Backpressure: a client that stops reading must not grow the server's memory or slow others.

What it does, each run on a fresh ``python -m server`` process (memory store), the load
generator being this process:

1. ``--jobs`` running jobs; ``--subscribers`` reading clients subscribed to all of them
   (raw Socket.IO over aiohttp, :mod:`scripts.benchsuite.wire`), plus, in the laggard runs,
   one client (:mod:`tests.support.laggard`, of the harness the tests and benches share: a
   raw websocket with a 4 KiB receive window)
   subscribed to all of them that stops reading once the load starts;
2. workers send ``progress`` calls on a fixed schedule of ``--rate`` calls per second
   (open loop: paced, not waiting for acks; at most ``--max-in-flight`` outstanding),
   spread over the jobs, for ``--warmup`` + ``--seconds`` s; each call is one event to
   every subscriber;
3. sampled meanwhile: the server's VmRSS (``/proc/<pid>/status``) every 0.2 s; measured:
   the reading clients' latency from a call's send to its event's receipt (same clock: one
   process), after the warm-up.

Runs: ``baseline`` (no laggard), ``laggard`` (the default ``MAX_CLIENT_QUEUE``; the laggard
should be dropped and memory stay flat), and ``unbounded`` (the laggard with a bound too
large to reach, to show what the bound prevents).

The load, by default: 1,500 calls/s, each one event to 4 sockets (3 readers and the
laggard), so 6,000 events/s flow (the issue asks for 5,000), each ~450 bytes (``step`` is
padded: the kernel buffers about 2 MB for a client that stopped reading before anything
queues in the server, and small events would take longer than the 10 s stall to get past
that). The rate is what a loaded 2-core machine serves below saturation (a saturated
server's latency is its queue, not what a laggard adds); ``--rate`` changes it. The server
runs with ``PROGRESS_EVENTS_PER_S=0``: 1,500 calls/s over 50 jobs is 30 per job and second,
which the default per-job limit (10/s) would cut to 500 events/s; the point here is the
per-client queue.

Prints one JSON line per run, then a table and the p99 ratio of the laggard run to the
baseline. Usage::

    scripts/bench backpressure            # about a minute
    scripts/bench backpressure --tiny     # a few seconds, smoke
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import Sequence
from typing import Any

import aiohttp

from scripts.benchsuite import cli
from scripts.benchsuite.common import (
    percentile,
    running_jobs,
    user_auth,
    worker_auth,
)
from scripts.benchsuite.readers import ProgressReaders
from scripts.benchsuite.report import Column, emit, table, text
from scripts.benchsuite.servers import Server, jobspine
from scripts.benchsuite.wire import WireClient, new_session
from tests.support.laggard import Laggard  # a client of the shared harness

PROGRESS = 50.0
SAMPLE_EVERY_S = 0.2
DRAIN_WITHIN_S = 30.0
UNREACHABLE_BOUND = "10000000"


async def sample_rss(server: Server, samples: list[tuple[float, int]], stop: asyncio.Event) -> None:
    started = time.perf_counter()
    while not stop.is_set():
        samples.append((time.perf_counter() - started, server.rss_bytes()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), SAMPLE_EVERY_S)


async def metric(http: aiohttp.ClientSession, url: str, name: str) -> float | None:
    async with http.get(f"{url}/metrics") as response:
        text = await response.text()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


async def run(mode: str, args: argparse.Namespace) -> dict[str, Any]:
    env = {"PROGRESS_EVENTS_PER_S": "0"}
    if mode == "unbounded":
        env["MAX_CLIENT_QUEUE"] = UNREACHABLE_BOUND
    elif args.queue is not None:
        env["MAX_CLIENT_QUEUE"] = str(args.queue)
    async with jobspine(f"backpressure-{mode}", **env) as server, new_session() as http:
        jobs = await running_jobs(http, server.url, args.jobs)
        sent: dict[str, float] = {}
        readers = await ProgressReaders.subscribed(http, server.url, jobs, args.subscribers)
        laggard = None
        if mode != "baseline":
            laggard = await asyncio.wait_for(
                Laggard.connect(server.url, "/", user_auth()), DRAIN_WITHIN_S
            )
            for job in jobs:
                await asyncio.wait_for(
                    laggard.call("job:subscribe", {"job_id": job.job_id}), DRAIN_WITHIN_S
                )
            # From here on the laggard reads nothing.
        workers = [
            await WireClient.connect(http, server.url, "/workers", worker_auth())
            for _ in range(args.workers)
        ]
        rss: list[tuple[float, int]] = []
        stop_sampling = asyncio.Event()
        sampler = asyncio.create_task(sample_rss(server, rss, stop_sampling))
        in_flight: set[asyncio.Task[None]] = set()
        issued = acked = skipped = errors = 0

        async def call(n: int) -> None:
            nonlocal acked, errors
            job = jobs[n % len(jobs)]
            step = f"s{n}" + padding
            sent[step.rstrip()] = time.perf_counter()
            payload = {"job_id": job.job_id, "lease": job.lease, "progress": PROGRESS, "step": step}
            try:
                ack = await workers[n % len(workers)].call("progress", payload)
            except ConnectionError:
                errors += 1
                return
            if isinstance(ack, dict) and ack.get("ok"):
                acked += 1
            else:
                errors += 1

        padding = " " * args.step_bytes
        tick = 0.005
        per_tick = args.rate * tick
        started = time.perf_counter()
        warm_until = started + args.warmup
        end = warm_until + args.seconds
        measured_from = acked_at_start = 0
        budget = 0.0
        try:
            next_tick = started
            while (now := time.perf_counter()) < end:
                if readers.sent is None and now >= warm_until:  # the latencies count
                    readers.sent, measured_from, acked_at_start = sent, issued, acked
                budget += per_tick
                while budget >= 1:
                    budget -= 1
                    if len(in_flight) >= args.max_in_flight:
                        skipped += 1
                        continue
                    issued += 1
                    task = asyncio.create_task(call(issued))
                    in_flight.add(task)
                    task.add_done_callback(in_flight.discard)
                next_tick += tick
                await asyncio.sleep(max(0.0, next_tick - time.perf_counter()))
            measured_s = time.perf_counter() - warm_until
            acked_in_window = acked - acked_at_start
            if in_flight:
                await asyncio.wait_for(asyncio.gather(*in_flight), DRAIN_WITHIN_S)
            # Every acked call is one event per reader: wait for them (bounded).
            with contextlib.suppress(TimeoutError):
                await readers.until(acked * len(readers.sockets), DRAIN_WITHIN_S)
        finally:
            stop_sampling.set()
            await sampler
        laggard_dropped = None
        if laggard is not None:
            try:
                laggard_dropped = await asyncio.wait_for(laggard.closed_by_server(), args.drop_wait)
            except TimeoutError:
                laggard_dropped = False
            await laggard.close()
        dropped_metric = await metric(http, server.url, "jobspine_slow_clients_dropped_total")
        await readers.close()
        for socket in workers:
            await socket.close()

    latencies = sorted(readers.latencies)
    expected = acked * len(readers.sockets)
    rss_mb = [r / 2**20 for _, r in rss]
    return {
        "run": mode,
        "rate_target": args.rate,
        "rate_acked": round(acked_in_window / measured_s),
        "jobs": args.jobs,
        "readers": args.subscribers,
        "laggard": mode != "baseline",
        "max_client_queue": UNREACHABLE_BOUND if mode == "unbounded" else args.queue or 5000,
        "calls": issued,
        "calls_measured": issued - measured_from,
        "skipped": skipped,
        "errors": errors,
        "events_delivered": readers.received,
        "events_expected": expected,
        "p50_ms": round(percentile(latencies, 50) * 1e3, 2) if latencies else None,
        "p99_ms": round(percentile(latencies, 99) * 1e3, 2) if latencies else None,
        "rss_start_mb": round(rss_mb[0], 1) if rss_mb else None,
        "rss_max_mb": round(max(rss_mb), 1) if rss_mb else None,
        "rss_end_mb": round(rss_mb[-1], 1) if rss_mb else None,
        "laggard_dropped": laggard_dropped,
        "slow_clients_dropped_total": dropped_metric,
    }


COLUMNS = (
    text("run"),
    Column("rate_acked", "calls/s"),
    Column("events_delivered", "delivered"),
    Column("events_expected", "expected"),
    Column("p50_ms", "p50 ms"),
    Column("p99_ms", "p99 ms"),
    Column("rss_start_mb", "RSS start MB"),
    Column("rss_max_mb", "RSS max MB"),
    Column("rss_end_mb", "RSS end MB"),
    Column("laggard_dropped", "laggard dropped"),
    Column("skipped", "skipped"),
    Column("errors", "errors"),
)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = cli.parser("backpressure", __doc__)
    parser.add_argument("--rate", type=float, default=1500.0, help="progress calls per second")
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--subscribers", type=int, default=3, help="reading clients")
    parser.add_argument(
        "--step-bytes", type=int, default=200, help="padding of each event's step (<= 240)"
    )
    parser.add_argument("--workers", type=int, default=8, help="worker sockets")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured (laggard stalled)")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--max-in-flight", type=int, default=2000)
    parser.add_argument("--queue", type=int, default=None, help="MAX_CLIENT_QUEUE (default)")
    parser.add_argument(
        "--runs", default="baseline,laggard,unbounded", help="comma-separated runs, in order"
    )
    parser.add_argument(
        "--drop-wait", type=float, default=5.0, help="how long to wait for the laggard's drop"
    )
    parser.add_argument("--tiny", action="store_true", help="smoke: 200/s, 5 jobs, 1 s")
    args = parser.parse_args(argv)
    if args.tiny:
        args.rate, args.jobs, args.subscribers, args.workers = 200.0, 5, 2, 2
        args.seconds, args.warmup, args.drop_wait = 1.0, 0.5, 0.5
    if not 0 <= args.step_bytes <= 240:
        parser.error("--step-bytes must be from 0 to 240 (steps are at most 256 characters)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    results = []
    for mode in [m.strip() for m in args.runs.split(",") if m.strip()]:
        results.append(emit("backpressure", asyncio.run(run(mode, args))))
    print()
    print(
        f"{args.rate:g} calls/s target over {args.jobs} jobs to {args.subscribers} readers"
        f" (+1 laggard), {args.seconds:g} s measured after {args.warmup:g} s warm-up"
    )
    print(table(results, COLUMNS))
    by_run = {r["run"]: r for r in results}
    if "baseline" in by_run and "laggard" in by_run and by_run["baseline"]["p99_ms"]:
        ratio = by_run["laggard"]["p99_ms"] / by_run["baseline"]["p99_ms"]
        print(f"p99 with the laggard / without: {ratio:.2f} (goal <= 2)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
