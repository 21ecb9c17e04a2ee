"""Progress-report throughput of the Postgres job store, grouping off vs on, on scratch databases.

Why: each progress report with its event is a transaction of two statements (the fenced
UPDATE, then the event INSERT with the backlog trim) and a commit; grouping concurrent reports
of different jobs (:mod:`server.store.postgres.progress_batch`, group commit: a report arriving
while a batch is written waits for it, then goes in the next) trades that wait for one
statement and one commit per batch. This measures what that buys.

What it does: migrates a fresh database, seeds N running jobs, then for each mode clones it
and runs K concurrent loops for T seconds; each loop owns its share of the jobs (as the
repository's per-job lock would: one report of a job at a time) and reports rising progress
with its event through ``PostgresJobStore.update_progress``. Afterwards it checks every job's
stream: seqs contiguous up to the job's seq, at most the backlog kept. Scratch databases are
dropped at the end.

Prints one JSON line per mode, then a table. Usage::

    scripts/bench progress-store           # defaults: < 60 s
    scripts/bench progress-store --tiny    # a few seconds

The server comes from ``--dsn``, else ``JOBSPINE_TEST_DATABASE_URL``, else
``postgresql://postgres@127.0.0.1:5432/postgres`` (a role that may create databases).
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Sequence
from typing import Any

import asyncpg

from scripts.benchsuite import store_modes
from scripts.benchsuite.report import Column
from server.store.postgres import PostgresJobStore
from server.store.progress import ProgressWrite

BACKLOG = 200


async def stream_check(conn: asyncpg.Connection[Any]) -> dict[str, int]:
    """Jobs whose kept events are not exactly the contiguous tail up to the job's seq."""
    row = await conn.fetchrow(
        """
        SELECT count(*) FILTER (WHERE e.n IS DISTINCT FROM LEAST(j.seq, $1)
                                   OR e.top IS DISTINCT FROM j.seq
                                   OR e.top - e.bottom + 1 IS DISTINCT FROM e.n) AS broken,
               coalesce(sum(e.n), 0) AS events
        FROM jobs j LEFT JOIN (
            SELECT job_id, count(*) AS n, min(seq) AS bottom, max(seq) AS top
            FROM job_events GROUP BY job_id
        ) e ON e.job_id = j.id
        """,
        BACKLOG,
    )
    assert row is not None
    return {"broken_streams": int(row["broken"]), "events_kept": int(row["events"])}


async def counters(conn: asyncpg.Connection[Any]) -> dict[str, int]:
    """The streams' check, then the database's commits (the check's own among them)."""
    check = await stream_check(conn)
    await conn.execute("SELECT pg_stat_clear_snapshot()")
    commits: int = await conn.fetchval(
        "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
    )
    return {"commits": commits, **check}


async def run_mode(mode: store_modes.Mode) -> dict[str, Any]:
    events = 0

    async def report(
        store: PostgresJobStore, tally: store_modes.Tally, share: store_modes.Jobs, deadline: float
    ) -> None:
        nonlocal events
        i = 0
        while time.perf_counter() < deadline:
            job_id, lease = share[i % len(share)]
            i += 1
            progress = min(100.0, i / 1000)  # rising, never past 100
            write = ProgressWrite(lease=lease, progress=progress, step=f"step {i}")
            result = await tally.time(functools.partial(store.update_progress, job_id, write))
            if result is not None:
                events += len(result.events)

    jobs, loops = mode.jobs, mode.args.loops
    run = await store_modes.drive(
        mode,
        store_options={"backlog_size": BACKLOG, "batch_progress": mode.batched},
        counters=counters,
        loop=report,
        shares=[share for k in range(loops) if (share := jobs[k::loops])],
    )
    return {
        **run.head("report"),
        "events": events,
        **run.tally.result(),
        **run.batching(
            run.store.progress_batcher, "report", unbatched_statements=2 * len(run.tally.latencies)
        ),
        "commits": run.after["commits"] - run.before["commits"],
        "broken_streams": run.after["broken_streams"],
        "events_kept": run.after["events_kept"],
    }


BENCH = store_modes.StoreBench(
    bench="progress-store",
    doc=__doc__,
    loop="report",
    prefix="jobspine_bench_progress_",
    seed=functools.partial(store_modes.seed, events=True),
    run_mode=run_mode,
    columns=store_modes.columns(
        "grouping", "report", "reports", [Column("broken_streams", "broken streams")]
    ),
    summary=", every report with its event",
)


def main(argv: Sequence[str] | None = None) -> int:
    return store_modes.main(BENCH, argv)


if __name__ == "__main__":
    sys.exit(main())
