"""jobspine's side of ``scripts/bench peer``: its worker (the SDK) and its watching client
(python-socketio), each a process of its own, as saq's are.

    python -m scripts.benchsuite.peer.jobspine_side worker URL --concurrency 20 --reports 20
    python -m scripts.benchsuite.peer.jobspine_side client URL --jobs 200

The worker is :class:`workers.sdk.Worker` on the loop of ``python -m workers`` (uvloop when
installed), with progress coalescing off (every report is sent) and a claim poll of
``--poll`` seconds (the server's ``jobs:available`` push wakes it sooner); each job
reports ``--reports`` progress values and saves ``--checkpoints`` checkpoints. The client is
one user socket: it creates every job over the socket and sees every event of them through
its ``user:<sub>`` room. Like saq's side it prints ``{"ready": …}``, waits for a line on
stdin, runs, and prints its summary.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Any

import socketio

from jobspine_shared.event_loop import event_loop_factory
from scripts.benchsuite.peer.observe import (
    WITHIN_S,
    Watch,
    checkpoint_at,
    measured_client,
    progress_of,
    run_side,
    say,
    stamp,
)
from tests.support.processes import token
from workers.sdk import JobContext, Worker, WorkerConfig

JOB_TYPE = "peer"
OWNER = "peer-user"
END_EVENTS = ("job:completed", "job:failed", "job:cancelled")


async def work(args: argparse.Namespace) -> None:
    saves = checkpoint_at(args.reports, args.checkpoints)

    async def peer_job(ctx: JobContext) -> dict[str, int]:
        for report in range(1, args.reports + 1):
            await ctx.progress(progress_of(report, args.reports), stamp(report, args.reports))
            if report in saves:
                await ctx.checkpoint({"report": report})
        return {"reports": args.reports}

    worker = Worker(
        WorkerConfig(
            url=args.url,
            token=token("peer-worker", "worker", ttl_s=6 * 3600),
            concurrency=args.concurrency,
            poll_interval_s=args.poll,
            progress_min_delta=0.0,
            progress_min_interval_s=0.0,
        )
    )
    worker.register(JOB_TYPE, peer_job)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, worker.stop)
    running = asyncio.create_task(worker.run())
    await worker.connection.wait_connected()
    say(ready=True)
    await running


async def client(args: argparse.Namespace) -> None:
    watch = Watch(args.jobs)
    done = asyncio.Event()
    sio = socketio.AsyncClient(reconnection=False)

    async def on_event(event: str, data: Any) -> None:
        if not isinstance(data, dict) or "job_id" not in data:
            return
        job = data["job_id"]
        if isinstance(data.get("seq"), int):
            watch.seq(job, data["seq"])
        if event == "job:progress":
            payload = data.get("data") or {}
            watch.progress(job, float(payload.get("progress", -1)), payload.get("step"))
        elif event in END_EVENTS:
            if event != "job:completed":
                watch.problems.append(f"{job}: {event}")
            if watch.finished(job):
                done.set()

    sio.on("*", on_event)
    await sio.connect(
        args.url, auth={"token": token(OWNER, ttl_s=6 * 3600)}, transports=["websocket"]
    )

    async def create(_: int) -> str:
        ack = await sio.call("job:create", {"type": JOB_TYPE, "input": {}}, timeout=WITHIN_S)
        if not isinstance(ack, dict) or not ack.get("ok"):
            raise RuntimeError(f"job:create refused: {ack!r}")
        job_id: str = ack["job"]["id"]
        return job_id

    await measured_client(watch, create, done.wait, ordered_seqs=True)
    await sio.disconnect()


if __name__ == "__main__":
    # The worker runs on the loop ``python -m workers`` picks (uvloop when installed); the
    # client stands for a user's own program, on asyncio's loop.
    sys.exit(run_side("jobspine_side", work, client, worker_loop=event_loop_factory("auto")))
