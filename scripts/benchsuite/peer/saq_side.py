"""saq's side of ``scripts/bench peer``: its worker and its watching client, run by saq's own
virtualenv (``.bench-venv``, standard library and saq only).

    python -m scripts.benchsuite.peer.saq_side worker URL --concurrency 20 --reports 20
    python -m scripts.benchsuite.peer.saq_side client URL --jobs 200 --reports 20 --checkpoints 4

The job reports its progress with ``job.update(progress=…, meta={"step": stamp})`` and saves
each checkpoint with ``job.update(meta={…, "checkpoint": …})``, the nearest saq has to
jobspine's ``ctx.progress`` and ``ctx.checkpoint`` (both are one durable write each). The
client enqueues every job and watches them all: on Redis through ``Queue.listen`` (pub/sub,
one message per update, each followed by a read of the job, as saq's own ``listen`` users
do); on Postgres, where saq's ``listen`` polls, by reading the unfinished jobs every
``--poll`` seconds. It prints ``{"ready": …}``, waits for a line on stdin, runs, and prints
its summary (:class:`~scripts.benchsuite.peer.observe.Watch`).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

from saq import Queue, Worker  # type: ignore[import-not-found, unused-ignore]
from saq.job import TERMINAL_STATUSES, Status  # type: ignore[import-not-found, unused-ignore]

from scripts.benchsuite.peer import observe
from scripts.benchsuite.peer.observe import WITHIN_S, Watch

FUNCTION = "peer_job"


async def peer_job(ctx: dict[str, Any], *, reports: int, checkpoints: int) -> dict[str, int]:
    job = ctx["job"]
    saves = observe.checkpoint_at(reports, checkpoints)
    for report in range(1, reports + 1):
        step = observe.stamp(report, reports)
        await job.update(progress=observe.progress_of(report, reports), meta={"step": step})
        if report in saves:
            await job.update(meta={"step": step, "checkpoint": {"report": report}})
    return {"reports": reports}


async def work(args: argparse.Namespace) -> None:
    queue = Queue.from_url(args.url)
    worker = Worker(queue, functions=[(FUNCTION, peer_job)], concurrency=args.concurrency)
    await queue.connect()  # its tables exist before the client connects
    observe.say(ready=True)
    await worker.start()  # until SIGTERM (saq's own signal handler)
    await queue.disconnect()


def value_of(step: str | None) -> float | None:
    """The progress a stamped step stands for (saq sets ``progress`` to 1.0 on completion,
    so the step, not ``job.progress``, tells which report the client saw)."""
    if not step:
        return None
    number, _, rest = step.partition("/")
    total = rest.partition("@")[0]
    return observe.progress_of(int(number), int(total))


def note(watch: Watch, key: str, job: Any) -> bool:
    step = (job.meta or {}).get("step")
    value = value_of(step)
    if value is not None:
        watch.progress(key, value, step)
    if job.status in TERMINAL_STATUSES:
        if job.status != Status.COMPLETE:
            watch.problems.append(f"{key}: {job.status} {job.error}")
        if job.attempts != 1:
            watch.problems.append(f"{key}: {job.attempts} attempts")
        return watch.finished(key)
    return False


async def watch_redis(queue: Any, keys: list[str], watch: Watch, pending: set[str]) -> None:
    async def changed(key: str, status: Any) -> bool:
        if key not in pending:
            return not pending
        job = await queue.job(key)
        if job is not None and note(watch, key, job):
            return True
        if job is not None and job.status in TERMINAL_STATUSES:
            pending.discard(key)
        return not pending

    # Subscribed before the jobs exist: each job's key is known once it is enqueued.
    await queue.listen(keys, changed, timeout=WITHIN_S)


async def watch_postgres(
    queue: Any, watch: Watch, pending: set[str], poll_s: float, enqueued: asyncio.Event
) -> None:
    await enqueued.wait()
    deadline = time.monotonic() + WITHIN_S
    while pending and time.monotonic() < deadline:
        for job in await queue.jobs(sorted(pending)):
            if job is None:
                continue
            note(watch, job.key, job)
            if job.status in TERMINAL_STATUSES:
                pending.discard(job.key)
        if pending:
            await asyncio.sleep(poll_s)


async def client(args: argparse.Namespace) -> None:
    queue = Queue.from_url(args.url)
    await queue.connect()
    keys = [f"peer-{args.tag}-{i}" for i in range(args.jobs)]
    watch = Watch(args.jobs)
    pending = set(keys)
    enqueued = asyncio.Event()
    redis = args.url.startswith("redis")
    watcher = asyncio.create_task(
        watch_redis(queue, keys, watch, pending)
        if redis
        else watch_postgres(queue, watch, pending, args.poll, enqueued)
    )
    # saq's listen tells nobody when its subscription is in place: give it a moment,
    # outside the measured time, so that no job's first updates go unheard.
    await asyncio.sleep(0.5)

    async def enqueue(i: int) -> str:
        await queue.enqueue(
            FUNCTION,
            key=keys[i],
            reports=args.reports,
            checkpoints=args.checkpoints,
            timeout=int(WITHIN_S),
        )
        return keys[i]

    async def until_ended() -> None:
        enqueued.set()
        await watcher

    await observe.measured_client(watch, enqueue, until_ended, ordered_seqs=False)
    await queue.disconnect()


if __name__ == "__main__":
    sys.exit(observe.run_side("saq_side", work, client))
