"""Heartbeat throughput of the Postgres job store, batching off vs on, on a scratch database.

Why: heartbeats are most of the store's writes when many jobs run, and batching them
(:mod:`server.store.postgres.heartbeat_batch`) trades up to a few milliseconds of latency for fewer
statements and commits. This measures what that trade buys on a real server, and checks that
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

import argparse
import functools
import sys
import time
from collections.abc import Sequence
from typing import Any

import asyncpg

from scripts.benchsuite import store_modes
from scripts.benchsuite.report import Column, text
from server.store.postgres import PostgresJobStore
from tests.support.databases import connected


async def table_counts(conn: asyncpg.Connection[Any]) -> dict[str, int]:
    await conn.execute("SELECT pg_stat_clear_snapshot()")
    row = await conn.fetchrow(
        "SELECT t.n_tup_upd, t.n_tup_hot_upd, d.xact_commit"
        " FROM pg_stat_user_tables t, pg_stat_database d"
        " WHERE t.relname = 'jobs' AND d.datname = current_database()"
    )
    assert row is not None
    return {"updates": row[0], "hot_updates": row[1], "commits": row[2]}


async def run_mode(
    base: str,
    template: str,
    jobs: Sequence[tuple[str, str]],
    args: argparse.Namespace,
    delay: float,
) -> dict[str, Any]:
    """One mode on its own clone of the seeded database."""
    name, dsn = await store_modes.clone(base, template, delay)
    async with connected(dsn) as reader:
        before = await table_counts(reader)
        store = PostgresJobStore(
            dsn,
            backlog_size=100,
            min_pool=args.pool,
            max_pool=args.pool,
            heartbeat_batch_delay_s=delay,
        )
        batcher = store.heartbeat_batcher
        tally = store_modes.Tally()

        async def beat(share: Sequence[tuple[str, str]], deadline: float) -> None:
            i = 0
            while time.perf_counter() < deadline:
                job_id, lease = share[i % len(share)]
                i += 1
                await tally.time(functools.partial(store.heartbeat, job_id, lease))

        shares = [jobs[k :: args.loops] or [jobs[k % len(jobs)]] for k in range(args.loops)]
        elapsed = await store_modes.run_loops(store, beat, shares, args.seconds)
        await store_modes.until_no_backends(reader, name)
        after = await table_counts(reader)

    done = len(tally.latencies)
    errors = sum(tally.errors.values())
    updates = after["updates"] - before["updates"]
    hot = after["hot_updates"] - before["hot_updates"]
    return {
        **store_modes.head(delay, len(jobs), args, elapsed),
        "heartbeats": done,
        "heartbeats_per_s": round(done / elapsed),
        **tally.result(),
        "statements": batcher.statements if batcher else done + errors,
        "flushes": batcher.flushes if batcher else None,
        "heartbeats_per_flush": round(done / batcher.flushes, 1) if batcher else None,
        "row_updates": updates,
        "hot_updates": hot,
        "hot_ratio": round(hot / updates, 4) if updates else None,
        "commits": after["commits"] - before["commits"],
    }


BENCH = store_modes.StoreBench(
    bench="heartbeat-store",
    doc=__doc__,
    loop="heartbeat",
    prefix="jobspine_bench_",
    seed=functools.partial(store_modes.seed, job_input='{"query": "benchmark"}'),
    run_mode=run_mode,
    columns=[
        text("mode", "batching"),
        Column("heartbeats_per_s", "beats/s"),
        Column("p50_ms", "p50 ms"),
        Column("p99_ms", "p99 ms"),
        Column("statements", "statements"),
        Column("heartbeats_per_flush", "beats/flush"),
        Column("commits", "commits"),
        Column("row_updates", "row updates"),
        Column("hot_ratio", "HOT ratio"),
        Column("errors", "errors"),
    ],
)


def main(argv: Sequence[str] | None = None) -> int:
    return store_modes.main(BENCH, argv)


if __name__ == "__main__":
    sys.exit(main())
