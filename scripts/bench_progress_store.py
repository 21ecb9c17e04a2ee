"""Progress-report throughput of the Postgres job store, grouping off vs on, on scratch databases.

Why: each progress report with its event is a transaction of two statements (the fenced
UPDATE, then the event INSERT with the backlog trim) and a commit; grouping concurrent reports
of different jobs (:mod:`server.store.progress_batch`) trades up to a few milliseconds of
latency for one statement and one commit per batch. This measures what that buys.

What it does: migrates a fresh database, seeds N running jobs, then for each mode clones it
and runs K concurrent loops for T seconds; each loop owns its share of the jobs (as the
repository's per-job lock would: one report of a job at a time) and reports rising progress
with its event through ``PostgresJobStore.update_progress``. Afterwards it checks every job's
stream: seqs contiguous up to the job's seq, at most the backlog kept. Scratch databases are
dropped at the end.

Prints one JSON line per mode, then a table. Usage::

    .venv/bin/python scripts/bench_progress_store.py            # defaults: < 60 s
    .venv/bin/python scripts/bench_progress_store.py --tiny     # a few seconds

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
from server.store.progress import ProgressWrite

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
PREFIX = "jobspine_bench_progress_"
BACKLOG = 200


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


async def until_no_backends(conn: asyncpg.Connection[Any], database: str) -> None:
    """A template cannot be cloned while in use; statistics are complete once backends end."""
    deadline = time.monotonic() + 30
    while await conn.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
        database,
    ):
        if time.monotonic() > deadline:
            raise RuntimeError(f"connections to {database} did not end")
        await asyncio.sleep(0.02)


async def seed(dsn: str, jobs: int) -> list[tuple[str, str]]:
    """``jobs`` running jobs with a lease each and their first two events, in bulk."""
    await migrate(dsn)
    ids = [uuid.uuid4() for _ in range(jobs)]
    leases = [f"lease-{uuid.uuid4().hex[:12]}" for _ in range(jobs)]
    async with connection(dsn) as conn:
        await conn.execute(
            "INSERT INTO jobs (id, user_id, type, input, created_at, updated_at, epoch, seq)"
            " SELECT id, 'bench', 'research', '{}', now(), now(), 'e1', 1"
            " FROM unnest($1::uuid[]) AS t(id)",
            ids,
        )
        await conn.execute(
            "UPDATE jobs SET state = 'running', lease = t.lease, worker_id = 'bench', seq = 2,"
            " started_at = now(), last_heartbeat_at = now(), attempt = 1"
            " FROM unnest($1::uuid[], $2::text[]) AS t(id, lease) WHERE jobs.id = t.id",
            ids,
            leases,
        )
        await conn.execute(
            "INSERT INTO job_events (job_id, seq, type, at, data)"
            " SELECT id, s, CASE s WHEN 1 THEN 'job:created' ELSE 'job:started' END, now(), '{}'"
            " FROM unnest($1::uuid[]) AS t(id), generate_series(1, 2) AS s",
            ids,
        )
        await conn.execute("VACUUM (ANALYZE) jobs, job_events")
    return [(str(i), lease) for i, lease in zip(ids, leases, strict=True)]


async def commits(conn: asyncpg.Connection[Any]) -> int:
    await conn.execute("SELECT pg_stat_clear_snapshot()")
    value: int = await conn.fetchval(
        "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
    )
    return value


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


async def run_mode(
    base: str,
    template: str,
    jobs: Sequence[tuple[str, str]],
    args: argparse.Namespace,
    delay: float,
) -> dict[str, Any]:
    name = f"{template}_{'on' if delay else 'off'}"
    async with connection(base) as admin:
        await until_no_backends(admin, template)
        await admin.execute(f"CREATE DATABASE {quote(name)} TEMPLATE {quote(template)}")
    dsn = dsn_for(base, name)
    async with connection(dsn) as reader:
        before = await commits(reader)
        store = PostgresJobStore(
            dsn,
            backlog_size=BACKLOG,
            min_pool=args.pool,
            max_pool=args.pool,
            progress_batch_delay_s=delay,
        )
        await store.open()
        latencies: list[float] = []
        errors: Counter[str] = Counter()
        events = 0

        async def report(share: Sequence[tuple[str, str]], deadline: float) -> None:
            nonlocal events
            i = 0
            while time.perf_counter() < deadline:
                job_id, lease = share[i % len(share)]
                i += 1
                progress = min(100.0, i / 1000)  # rising, never past 100
                write = ProgressWrite(lease=lease, progress=progress, step=f"step {i}")
                started = time.perf_counter()
                try:
                    result = await store.update_progress(job_id, write)
                except JobspineError as exc:
                    errors[type(exc).__name__] += 1
                    continue
                latencies.append(time.perf_counter() - started)
                events += len(result.events)

        shares = [jobs[k :: args.loops] for k in range(args.loops)]
        started = time.perf_counter()
        try:
            await asyncio.gather(*(report(s, started + args.seconds) for s in shares if s))
            elapsed = time.perf_counter() - started
        finally:
            batcher = store.progress_batcher
            await store.close()
        await until_no_backends(reader, name)
        after = await commits(reader)
        check = await stream_check(reader)

    done = len(latencies)
    latencies.sort()
    return {
        "mode": "on" if delay else "off",
        "delay_s": delay,
        "jobs": len(jobs),
        "loops": args.loops,
        "pool": args.pool,
        "seconds": round(elapsed, 2),
        "reports": done,
        "reports_per_s": round(done / elapsed),
        "events": events,
        "errors": dict(errors),
        "p50_ms": round(statistics.median(latencies) * 1e3, 2) if latencies else None,
        "p99_ms": round(latencies[int(0.99 * (done - 1))] * 1e3, 2) if latencies else None,
        "statements": batcher.statements if batcher else 2 * done,
        "flushes": batcher.flushes if batcher else None,
        "reports_per_flush": round(done / batcher.flushes, 1)
        if batcher and batcher.flushes
        else None,
        "commits": after - before,
        **check,
    }


async def drop_scratch(base: str, names: Sequence[str]) -> None:
    async with connection(base) as admin:
        for name in names:
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
        ("mode", "grouping"),
        ("reports_per_s", "reports/s"),
        ("p50_ms", "p50 ms"),
        ("p99_ms", "p99 ms"),
        ("statements", "statements"),
        ("reports_per_flush", "reports/flush"),
        ("commits", "commits"),
        ("broken_streams", "broken streams"),
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
    parser.add_argument("--loops", type=int, default=200, help="concurrent report loops (K)")
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
        f" pool {args.pool}, window {args.delay * 1e3:g} ms, every report with its event"
    )
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
