"""Heartbeat throughput of the Postgres job store, batching off vs on, on a scratch database.

Why: heartbeats are most of the store's writes when many jobs run, and batching them
(:mod:`server.store.heartbeat_batch`) trades up to a few milliseconds of latency for fewer
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
import asyncio
import contextlib
import json
import os
import statistics
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

# Run from a checkout without installing the package too.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server.errors import JobspineError
from server.store.migrator import migrate
from server.store.postgres import PostgresJobStore

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
PREFIX = "jobspine_bench_"


def dsn_for(base: str, database: str) -> str:
    return urlunsplit(urlsplit(base)._replace(path="/" + database))


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@contextlib.asynccontextmanager
async def connection(dsn: str) -> AsyncIterator[asyncpg.Connection[Any]]:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        yield conn
    finally:
        await conn.close()


async def wait_for_no_backends(conn: asyncpg.Connection[Any], database: str) -> None:
    """Until nobody else is connected to ``database``: a template cannot be cloned while in
    use, and a backend's table statistics are complete only once it has exited."""
    deadline = time.monotonic() + 30
    while await conn.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
        database,
    ):
        if time.monotonic() > deadline:
            raise RuntimeError(f"connections to {database} did not end")
        await asyncio.sleep(0.02)


async def seed(dsn: str, jobs: int) -> list[tuple[str, str]]:
    """``jobs`` running jobs with a lease each, written in bulk (the store's own claim path
    is not what is measured); vacuumed so both clones start with clean pages."""
    await migrate(dsn)
    ids = [uuid.uuid4() for _ in range(jobs)]
    leases = [f"lease-{uuid.uuid4().hex[:12]}" for _ in range(jobs)]
    async with connection(dsn) as conn:
        await conn.execute(
            "INSERT INTO jobs (id, user_id, type, input, created_at, updated_at, epoch, seq)"
            " SELECT id, 'bench', 'research', '{\"query\": \"benchmark\"}', now(), now(), 'e1', 1"
            " FROM unnest($1::uuid[]) AS t(id)",
            ids,
        )
        await conn.execute(
            "UPDATE jobs SET state = 'running', lease = t.lease, worker_id = 'bench',"
            " started_at = now(), last_heartbeat_at = now(), attempt = 1"
            " FROM unnest($1::uuid[], $2::text[]) AS t(id, lease) WHERE jobs.id = t.id",
            ids,
            leases,
        )
        await conn.execute("VACUUM (ANALYZE) jobs")
    return [(str(i), lease) for i, lease in zip(ids, leases, strict=True)]


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
    name = f"{template}_{'on' if delay else 'off'}"
    async with connection(base) as admin:
        await wait_for_no_backends(admin, template)
        await admin.execute(f"CREATE DATABASE {quote(name)} TEMPLATE {quote(template)}")
    dsn = dsn_for(base, name)
    async with connection(dsn) as reader:
        before = await table_counts(reader)
        store = PostgresJobStore(
            dsn,
            backlog_size=100,
            min_pool=args.pool,
            max_pool=args.pool,
            heartbeat_batch_delay_s=delay,
        )
        await store.open()
        latencies: list[float] = []
        errors: Counter[str] = Counter()

        async def beat(share: Sequence[tuple[str, str]], deadline: float) -> None:
            i = 0
            while time.perf_counter() < deadline:
                job_id, lease = share[i % len(share)]
                i += 1
                started = time.perf_counter()
                try:
                    await store.heartbeat(job_id, lease)
                except JobspineError as exc:
                    errors[type(exc).__name__] += 1
                    continue
                latencies.append(time.perf_counter() - started)

        shares = [jobs[k :: args.loops] or [jobs[k % len(jobs)]] for k in range(args.loops)]
        started = time.perf_counter()
        deadline = started + args.seconds
        try:
            await asyncio.gather(*(beat(share, deadline) for share in shares))
            elapsed = time.perf_counter() - started
        finally:
            batcher = store.heartbeat_batcher
            await store.close()
        await wait_for_no_backends(reader, name)
        after = await table_counts(reader)

    done = len(latencies)
    updates = after["updates"] - before["updates"]
    hot = after["hot_updates"] - before["hot_updates"]
    latencies.sort()
    return {
        "mode": "on" if delay else "off",
        "delay_s": delay,
        "jobs": len(jobs),
        "loops": args.loops,
        "pool": args.pool,
        "seconds": round(elapsed, 2),
        "heartbeats": done,
        "heartbeats_per_s": round(done / elapsed),
        "errors": dict(errors),
        "p50_ms": round(statistics.median(latencies) * 1e3, 2) if latencies else None,
        "p99_ms": round(latencies[int(0.99 * (done - 1))] * 1e3, 2) if latencies else None,
        "statements": batcher.statements if batcher else done + sum(errors.values()),
        "flushes": batcher.flushes if batcher else None,
        "heartbeats_per_flush": round(done / batcher.flushes, 1) if batcher else None,
        "row_updates": updates,
        "hot_updates": hot,
        "hot_ratio": round(hot / updates, 4) if updates else None,
        "commits": after["commits"] - before["commits"],
    }


async def drop_scratch(base: str, names: Sequence[str]) -> None:
    async with connection(base) as admin:
        for name in names:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = $1 AND pid <> pg_backend_pid()",
                name,
            )
            await admin.execute(f"DROP DATABASE IF EXISTS {quote(name)} WITH (FORCE)")


async def bench(args: argparse.Namespace) -> list[dict[str, Any]]:
    base: str = args.dsn
    template = f"{PREFIX}{uuid.uuid4().hex[:8]}"
    scratch = [template, f"{template}_off", f"{template}_on"]
    try:
        async with connection(base) as admin:
            await admin.execute(f"CREATE DATABASE {quote(template)} TEMPLATE template0")
        jobs = await seed(dsn_for(base, template), args.jobs)
        results = []
        for delay in (0.0, args.delay):
            result = await run_mode(base, template, jobs, args, delay)
            print(json.dumps(result), flush=True)
            results.append(result)
        return results
    finally:
        await drop_scratch(base, scratch)


def table(results: Sequence[dict[str, Any]]) -> str:
    columns = [
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
    ]
    rows = [[title for _, title in columns]]
    for result in results:
        rows.append(
            [
                "-"
                if result[key] is None
                else str(sum(result[key].values()))
                if key == "errors"
                else str(result[key])
                for key, _ in columns
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    lines = ["  ".join(cell.rjust(widths[i]) for i, cell in enumerate(row)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--dsn",
        default=os.environ.get("JOBSPINE_TEST_DATABASE_URL") or DEFAULT_DSN,
        help="a server's maintenance database; scratch databases are created beside it",
    )
    parser.add_argument("--jobs", type=int, default=1000, help="running jobs (N)")
    parser.add_argument("--loops", type=int, default=200, help="concurrent heartbeat loops (K)")
    parser.add_argument("--seconds", type=float, default=10.0, help="per mode (T)")
    parser.add_argument("--delay", type=float, default=0.002, help="batch window when on")
    parser.add_argument("--pool", type=int, default=10, help="the store's pool size")
    parser.add_argument(
        "--tiny", action="store_true", help="a few seconds: 50 jobs, 20 loops, 1 s per mode"
    )
    args = parser.parse_args(argv)
    if args.tiny:
        args.jobs, args.loops, args.seconds = 50, 20, 1.0
    if args.jobs < 1 or args.loops < 1 or args.seconds <= 0 or args.delay <= 0:
        parser.error("--jobs, --loops, --seconds and --delay must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        results = asyncio.run(bench(args))
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"benchmark failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print()
    print(
        f"{args.jobs} running jobs, {args.loops} loops, {args.seconds:g} s per mode,"
        f" pool {args.pool}, window {args.delay * 1e3:g} ms"
    )
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
