"""d. Replay: one ``job:subscribe`` with ``after_seq`` that returns ``replay_events`` missed
events, round trip p50/p99, on each store; raw: a python-socketio call whose ack carries as
many ready-made events of the same shape.

The job gets its events from progress calls (one event each; the server under test runs
without a live progress limit, and checkpoints top up if a limit held some back).
"""

from __future__ import annotations

import time

from scripts.benchsuite.common import (
    Result,
    RunningJob,
    Series,
    at_most,
    checked,
    percentile,
    running_jobs,
    user_auth,
    worker_auth,
)
from scripts.benchsuite.context import Context
from scripts.benchsuite.servers import Server
from scripts.benchsuite.wire import WireClient

P99_GOALS_MS = {"memory": 20.0, "postgres": 50.0}


async def _fill(ctx: Context, server: Server, job: RunningJob, events: int) -> int:
    """Give ``job`` at least ``events`` + 1 events; its latest seq."""
    worker = await WireClient.connect(ctx.http, server.url, "/workers", worker_auth())
    user = await WireClient.connect(ctx.http, server.url, "/", user_auth())
    try:
        for n in range(events):
            payload = {"job_id": job.job_id, "lease": job.lease, "progress": 50.0, "step": f"s{n}"}
            checked(await worker.call("progress", payload), "progress")
        seq = int(
            checked(await user.call("job:subscribe", {"job_id": job.job_id}), "sub")["job"]["seq"]
        )
        while seq < events + 1:
            payload = {"job_id": job.job_id, "lease": job.lease, "data": {"n": seq}}
            checked(await worker.call("checkpoint", payload), "checkpoint")
            seq += 1
        return seq
    finally:
        await worker.close()
        await user.close()


async def _round_trips(
    ctx: Context, server: Server, payload: dict[str, object]
) -> tuple[list[float], float]:
    """Round trip of each call, and the server's CPU milliseconds per call."""
    want = ctx.sizes.replay_events
    user = await WireClient.connect(ctx.http, server.url, "/", user_auth())
    try:
        times = []
        cpu = 0.0
        for i in range(ctx.sizes.replay_calls + 1):
            if i == 1:
                cpu = server.cpu_seconds()
            started = time.perf_counter()
            ack = checked(await user.call("job:subscribe", payload), "subscribe")
            times.append(time.perf_counter() - started)
            if len(ack["events"]) != want or not ack["recovered"]:
                raise RuntimeError(f"the replay returned {len(ack['events'])} events, not {want}")
        cpu = server.cpu_seconds() - cpu
        return times[1:], cpu / ctx.sizes.replay_calls * 1e3  # the first one warms up
    finally:
        await user.close()


async def run(ctx: Context) -> list[Result]:
    sizes = ctx.sizes
    want = sizes.replay_events
    fake = "00000000-0000-4000-8000-000000000000"
    raw_times, raw_cpu = await _round_trips(ctx, ctx.raw, {"job_id": fake, "count": want})
    raw_p50, raw_p99 = percentile(raw_times, 50) * 1e3, percentile(raw_times, 99) * 1e3
    replays = Series("d", "replay_p99_ms", "ms", {"events": want, "calls": sizes.replay_calls})
    raw_extra = {"p50_ms": round(raw_p50, 3), "server_cpu_ms_per_call": round(raw_cpu, 3)}
    results = [replays.result("raw", raw_p99, raw_p99, extra=raw_extra)]
    for store, server in ctx.jobspine.items():
        [job] = await running_jobs(ctx.http, server.url, 1, type=f"bench.replay.{store}")
        seq = await _fill(ctx, server, job, want)
        payload = {"job_id": job.job_id, "after_seq": seq - want}
        times, cpu = await _round_trips(ctx, server, payload)
        p50, p99 = percentile(times, 50) * 1e3, percentile(times, 99) * 1e3
        extra = {
            "p50_ms": round(p50, 3),
            "raw_p50_ms": round(raw_p50, 3),
            "server_cpu_ms_per_call": round(cpu, 3),
            "raw_server_cpu_ms_per_call": round(raw_cpu, 3),
        }
        goal = at_most(P99_GOALS_MS[store], "ms", what="p99 ")
        results.append(replays.result(store, p99, raw_p99, goal, extra))
    return results
