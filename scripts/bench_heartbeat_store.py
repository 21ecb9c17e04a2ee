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

    .venv/bin/python scripts/bench_heartbeat_store.py            # defaults: < 60 s
    .venv/bin/python scripts/bench_heartbeat_store.py --tiny     # a few seconds

The server comes from ``--dsn``, else ``JOBSPINE_TEST_DATABASE_URL``, else
``postgresql://postgres@127.0.0.1:5432/postgres`` (a role that may create databases).
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import asyncpg

# Run from a checkout without installing the package too.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts import storebench
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


async def run_mode(
    base: str,
    template: str,
    jobs: Sequence[tuple[str, str]],
    args: argparse.Namespace,
    delay: float,
) -> dict[str, Any]:
    """One mode on its own clone of the seeded database."""
    name, dsn = await storebench.clone(base, template, delay)
    async with storebench.connection(dsn) as reader:
        before = await table_counts(reader)
        store = PostgresJobStore(
            dsn,
            backlog_size=100,
            min_pool=args.pool,
            max_pool=args.pool,
            heartbeat_batch_delay_s=delay,
        )
        batcher = store.heartbeat_batcher
        tally = storebench.Tally()

        async def beat(share: Sequence[tuple[str, str]], deadline: float) -> None:
            i = 0
            while time.perf_counter() < deadline:
                job_id, lease = share[i % len(share)]
                i += 1
                await tally.time(functools.partial(store.heartbeat, job_id, lease))

        shares = [jobs[k :: args.loops] or [jobs[k % len(jobs)]] for k in range(args.loops)]
        elapsed = await storebench.run_loops(store, beat, shares, args.seconds)
        await storebench.until_no_backends(reader, name)
        after = await table_counts(reader)

    done = len(tally.latencies)
    errors = sum(tally.errors.values())
    updates = after["updates"] - before["updates"]
    hot = after["hot_updates"] - before["hot_updates"]
    return {
        **storebench.head(delay, len(jobs), args, elapsed),
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


BENCH = storebench.StoreBench(
    doc=__doc__,
    loop="heartbeat",
    prefix="jobspine_bench_",
    seed=functools.partial(storebench.seed, job_input='{"query": "benchmark"}'),
    run_mode=run_mode,
    columns=[
        ("mode", "batching"),
        ("heartbeats_per_s", "beats/s"),
        ("p50_ms", "p50 ms"),
        ("p99_ms", "p99 ms"),
        ("statements", "statements"),
        ("heartbeats_per_flush", "beats/flush"),
        ("commits", "commits"),
        ("row_updates", "row updates"),
        ("hot_ratio", "HOT ratio"),
        ("errors", "errors"),
    ],
)

if __name__ == "__main__":
    sys.exit(storebench.main(BENCH))
