"""Heartbeat throughput of the Postgres job store, batching off vs on, on a scratch database.

Why: heartbeats are most of the store's writes when many jobs run, and batching them
(:mod:`server.store.postgres.heartbeat_batch`, group commit: a heartbeat arriving while a
batch is written waits for it, then goes in the next) trades that wait for fewer statements
and commits. This measures what that trade buys on a real server, and checks that
the batched UPDATE stays HOT (``pg_stat_user_tables.n_tup_hot_upd``).

What it does: migrates a fresh database, seeds N running jobs, then for each mode clones it
(so both modes start from the same pages) and runs K concurrent loops that heartbeat their
share of the jobs back to back for T seconds through ``PostgresJobStore.heartbeat``. The
statistics are read after the store's connections have ended (a backend reports its last
counts when it exits). Every scratch database is dropped at the end.

Prints one JSON line per mode, then a table. Usage::

    scripts/bench heartbeat-store          # defaults: < 60 s
    scripts/bench heartbeat-store --tiny   # a few seconds

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


async def table_counts(conn: asyncpg.Connection[Any]) -> dict[str, int]:
    await conn.execute("SELECT pg_stat_clear_snapshot()")
    row = await conn.fetchrow(
        "SELECT t.n_tup_upd, t.n_tup_hot_upd, d.xact_commit"
        " FROM pg_stat_user_tables t, pg_stat_database d"
        " WHERE t.relname = 'jobs' AND d.datname = current_database()"
    )
    assert row is not None
    return {"updates": row[0], "hot_updates": row[1], "commits": row[2]}


async def beat(
    store: PostgresJobStore, tally: store_modes.Tally, share: store_modes.Jobs, deadline: float
) -> None:
    """Heartbeats of the jobs of ``share`` in turn, back to back, until ``deadline``."""
    i = 0
    while time.perf_counter() < deadline:
        job_id, lease = share[i % len(share)]
        i += 1
        await tally.time(functools.partial(store.heartbeat, job_id, lease))


async def run_mode(mode: store_modes.Mode) -> dict[str, Any]:
    """One mode on its own clone of the seeded database."""
    jobs, loops = mode.jobs, mode.args.loops
    run = await store_modes.drive(
        mode,
        store_options={"backlog_size": 100, "batch_heartbeats": mode.batched},
        counters=table_counts,
        loop=beat,
        shares=[jobs[k::loops] or [jobs[k % len(jobs)]] for k in range(loops)],
    )
    errors = sum(run.tally.errors.values())
    updates = run.after["updates"] - run.before["updates"]
    hot = run.after["hot_updates"] - run.before["hot_updates"]
    return {
        **run.head("heartbeat"),
        **run.tally.result(),
        **run.batching(
            run.store.heartbeat_batcher,
            "heartbeat",
            unbatched_statements=len(run.tally.latencies) + errors,
        ),
        "row_updates": updates,
        "hot_updates": hot,
        "hot_ratio": round(hot / updates, 4) if updates else None,
        "commits": run.after["commits"] - run.before["commits"],
    }


BENCH = store_modes.StoreBench(
    bench="heartbeat-store",
    doc=__doc__,
    loop="heartbeat",
    prefix="jobspine_bench_",
    seed=functools.partial(store_modes.seed, job_input='{"query": "benchmark"}'),
    run_mode=run_mode,
    columns=store_modes.columns(
        "batching",
        "heartbeat",
        "beats",
        [Column("row_updates", "row updates"), Column("hot_ratio", "HOT ratio")],
    ),
)


def main(argv: Sequence[str] | None = None) -> int:
    return store_modes.main(BENCH, argv)


if __name__ == "__main__":
    sys.exit(main())
