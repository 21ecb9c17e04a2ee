"""What one watching client saw, the same for jobspine and saq (standard library only: it
also runs in saq's virtualenv).

The handler of every job stamps each progress report with the wall-clock time it sent it
(:func:`stamp`); a client that receives a report notes ``now - stamp`` (:meth:`Watch.progress`),
and the end of each job (:meth:`Watch.finished`). Worker and client are processes of one
machine, so their ``time.time()`` agree. :meth:`Watch.summary` is the client's JSON result:
rates, latency percentiles and the correctness checks.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

#: Progress a job reports last (percent); the client must see it before the job's end.
FINAL_PROGRESS = 100.0
#: Bound on one run of the workload, end to end.
WITHIN_S = 600.0
#: Creates (enqueues) in flight at once: a client stays well under the server's calls in
#: flight per socket (32), as a client author would.
CREATES_IN_FLIGHT = 16


def checkpoint_at(reports: int, checkpoints: int) -> set[int]:
    """The reports after which a checkpoint is saved: evenly spread, the last at the end."""
    if checkpoints <= 0:
        return set()
    return {round(reports * k / checkpoints) for k in range(1, checkpoints + 1)}


def stamp(report: int, reports: int) -> str:
    """The step text of report ``report`` of ``reports``: its number and send time."""
    return f"{report}/{reports}@{time.time():.6f}"


def sent_at(step: str) -> float | None:
    _, at, sent = step.rpartition("@")
    try:
        return float(sent) if at else None
    except ValueError:
        return None


def progress_of(report: int, reports: int) -> float:
    """The value of report ``report`` (1-based): rising to exactly 100 at the last one."""
    return round(FINAL_PROGRESS * report / reports, 3)


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..100); None of nothing."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]


class Watch:
    """Everything one client saw of the jobs it watched."""

    def __init__(self, jobs: int) -> None:
        self.jobs = jobs
        self.started = time.perf_counter()
        self.finished_at: float | None = None
        self.latencies: list[float] = []
        #: per job: seqs seen (jobspine; saq has none), progress values, ends.
        self.seqs: dict[str, list[int]] = {}
        self.progress_seen: dict[str, list[float]] = {}
        self.ends: dict[str, int] = {}
        self.ends_before_final: set[str] = set()
        self.problems: list[str] = []
        self._last_stamp: dict[str, float] = {}

    def start(self) -> None:
        self.started = time.perf_counter()
        self._cpu = time.process_time()

    def seq(self, job: str, seq: int) -> None:
        self.seqs.setdefault(job, []).append(seq)

    def progress(self, job: str, value: float, step: str | None) -> None:
        """A progress value reached the client (each report once: a repeated stamp, as a
        poller re-reading a job sees it, is not counted again)."""
        sent = sent_at(step or "")
        if sent is not None and self._last_stamp.get(job) == sent:
            return
        if sent is not None:
            self._last_stamp[job] = sent
            self.latencies.append(time.time() - sent)
        self.progress_seen.setdefault(job, []).append(value)

    def finished(self, job: str) -> bool:
        """The job's end reached the client; True once every job has ended."""
        self.ends[job] = self.ends.get(job, 0) + 1
        seen = self.progress_seen.get(job, [])
        if not seen or seen[-1] != FINAL_PROGRESS:
            self.ends_before_final.add(job)
        if len(self.ends) >= self.jobs and self.finished_at is None:
            self.finished_at = time.perf_counter()
        return self.finished_at is not None

    def checks(self, expected_ids: list[str], *, ordered_seqs: bool) -> dict[str, Any]:
        """Every job once, every seq once (where there are seqs), final progress seen."""
        unknown = set(self.ends) - set(expected_ids)
        missing = [j for j in expected_ids if j not in self.ends]
        twice = [j for j, n in self.ends.items() if n != 1]
        broken: list[str] = []
        if ordered_seqs:
            for job in expected_ids:
                seqs = self.seqs.get(job, [])
                if sorted(seqs) != list(range(1, len(seqs) + 1)) or len(set(seqs)) != len(seqs):
                    broken.append(job)
        return {
            "jobs_ended": len(self.ends),
            "jobs_missing": len(missing),
            "jobs_ended_twice": len(twice),
            "jobs_unknown": len(unknown),
            "jobs_broken_seq": len(broken),
            "jobs_final_progress_missed": len(self.ends_before_final),
            "ok": not (
                missing or twice or unknown or broken or self.ends_before_final or self.problems
            ),
        }

    def summary(self, expected_ids: list[str], *, ordered_seqs: bool) -> dict[str, Any]:
        end = self.finished_at or time.perf_counter()
        seconds = end - self.started
        reports_seen = sum(len(v) for v in self.progress_seen.values())
        return {
            "seconds": round(seconds, 3),
            "jobs_per_s": round(self.jobs / seconds, 2) if seconds > 0 else None,
            "progress_seen": reports_seen,
            "latency_p50_ms": _ms(percentile(self.latencies, 50)),
            "latency_p99_ms": _ms(percentile(self.latencies, 99)),
            "latency_max_ms": _ms(max(self.latencies, default=None)),
            "client_cpu_s": round(time.process_time() - self._cpu, 3),
            **self.checks(expected_ids, ordered_seqs=ordered_seqs),
            "problems": self.problems[:10],
        }


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 2)


def say(**fields: Any) -> None:
    """One JSON line to the driver, on stdout."""
    print(json.dumps(fields), flush=True)


async def wait_for_go() -> None:
    """Until the driver writes a line on stdin (it has read the CPU counters: go)."""
    await asyncio.to_thread(sys.stdin.readline)


async def measured_client(
    watch: Watch,
    create: Callable[[int], Awaitable[str]],
    until_ended: Callable[[], Awaitable[object]],
    *,
    ordered_seqs: bool,
) -> None:
    """What either side's client does once it watches: says it is ready, waits for the go,
    creates every job (``create(i)``, its id; :data:`CREATES_IN_FLIGHT` at once), waits
    until ``until_ended()`` (every job ended), and says its :meth:`Watch.summary`."""
    say(ready=True)
    await wait_for_go()
    watch.start()
    gate = asyncio.Semaphore(CREATES_IN_FLIGHT)

    async def one(i: int) -> str:
        async with gate:
            return await create(i)

    ids = list(await asyncio.gather(*(one(i) for i in range(watch.jobs))))
    await asyncio.wait_for(until_ended(), WITHIN_S)
    say(**watch.summary(ids, ordered_seqs=ordered_seqs))


def run_side(
    prog: str,
    work: Callable[[argparse.Namespace], Coroutine[Any, Any, None]],
    client: Callable[[argparse.Namespace], Coroutine[Any, Any, None]],
    *,
    worker_loop: Callable[[], asyncio.AbstractEventLoop] | None = None,
) -> int:
    """A side's command: ``work`` (the worker role, on ``worker_loop``: asyncio's when
    ``None``) or ``client`` (on asyncio's loop), on its command line."""
    args = side_arguments(prog, sys.argv[1:])
    loop = worker_loop if args.role == "worker" else None
    with asyncio.Runner(loop_factory=loop) as runner:
        runner.run(work(args) if args.role == "worker" else client(args))
    return 0


def side_arguments(prog: str, argv: list[str] | None) -> argparse.Namespace:
    """The command line of either side's worker and client (the driver passes the same)."""
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("role", choices=("worker", "client"))
    parser.add_argument("url")
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--reports", type=int, default=20)
    parser.add_argument("--checkpoints", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--poll", type=float, default=0.05)
    parser.add_argument("--tag", default="run", help="saq's job keys are unique per run")
    return parser.parse_args(argv)
