"""c. The supervisor's stale scan on a big table, and whether heartbeat writes stay HOT.

A fresh database gets ``scan_jobs`` jobs in one COPY (triggers off for the load only: the
rows go straight into their final states), ``scan_running`` of them running, spread over the
table, and ``scan_stale`` of those stale. Then:

- the stale scan: ``PostgresJobStore.find_stale`` (what ``JobRepository.find_stale_jobs``
  and so the supervisor call), timed ``scan_repeats`` times; raw: the same SQL through a
  bare asyncpg connection, without turning rows into jobs;
- the HOT ratio: every running job heartbeats ``hot_rounds`` times through the store (which
  batches them), and ``pg_stat_user_tables`` tells how many of those row updates were HOT.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import random
import time
import uuid
from typing import Any

import asyncpg

from scripts.benchsuite.common import (
    Result,
    Series,
    at_least_share,
    at_most,
    gather_limited,
    median,
    percentile,
)
from scripts.benchsuite.context import Context
from server.store.postgres import PostgresJobStore
from server.store.postgres.migrator import migrate
from server.store.postgres.queries import FIND_STALE_SQL
from tests.support.databases import scratch_database

SCAN_GOAL_MS = 3.0
HOT_GOAL = 0.9
STALE_AFTER_S = 30.0
LIMIT = 1000
STATS_WITHIN_S = 30.0
HEARTBEAT_CONCURRENCY = 200

COLUMNS = (
    "id",
    "user_id",
    "type",
    "input",
    "state",
    "progress",
    "created_at",
    "updated_at",
    "started_at",
    "completed_at",
    "failed_at",
    "paused_at",
    "error",
    "attempt",
    "last_heartbeat_at",
    "seq",
    "epoch",
    "lease",
    "worker_id",
)


def _rows(total: int, running: int, stale: int, layout: str) -> list[tuple[Any, ...]]:
    """Jobs in a realistic mix. ``spread``: running jobs anywhere in the table, so the scan
    visits a page per running job (the worst case); ``recent``: the running jobs are the
    newest rows, as when workers claim what was queued last."""
    rng = random.Random(7)
    rest = total - running
    states: list[str] = []
    for state, share in (("created", 0.05), ("paused", 0.05), ("failed", 0.10)):
        states += [state] * int(rest * share)
    states += ["completed"] * (rest - len(states))
    if layout == "spread":
        states += ["running"] * running
        rng.shuffle(states)
    else:
        rng.shuffle(states)
        states += ["running"] * running
    now = datetime.datetime.now(datetime.UTC)
    error = json.dumps({"code": "job_failed", "message": "bench", "retryable": False})
    rows = []
    stale_left = stale
    for i, state in enumerate(states):
        created = now - datetime.timedelta(seconds=(total - i))
        started = created + datetime.timedelta(seconds=1) if state != "created" else None
        heartbeat = None
        if state == "running":
            if stale_left > 0:
                stale_left -= 1
                heartbeat = now - datetime.timedelta(hours=1)
            else:
                heartbeat = now - datetime.timedelta(seconds=rng.uniform(0, 10))
        rows.append(
            (
                uuid.UUID(int=rng.getrandbits(128), version=4),
                f"user-{i % 500}",
                "bench",
                "{}",
                state,
                100.0 if state == "completed" else 0.0,
                created,
                now,
                started,
                now if state == "completed" else None,
                now if state == "failed" else None,
                now if state == "paused" else None,
                error if state == "failed" else None,
                1 if started else 0,
                heartbeat,
                3,
                uuid.UUID(int=rng.getrandbits(128)).hex,
                f"lease-{i}" if state == "running" else None,
                "bench-worker" if started else None,
            )
        )
    return rows


async def _load(dsn: str, total: int, running: int, stale: int, layout: str) -> None:
    await migrate(dsn)
    conn = await asyncpg.connect(dsn)
    try:
        # Replica mode skips the transition triggers, which refuse inserting jobs in any
        # state but created; the CHECK constraints still hold every row to the contract.
        await conn.execute("SET session_replication_role = replica")
        await conn.copy_records_to_table(
            "jobs", records=_rows(total, running, stale, layout), columns=COLUMNS
        )
        await conn.execute("SET session_replication_role = DEFAULT")
        await conn.execute("VACUUM ANALYZE jobs")
    finally:
        await conn.close()


async def _timed(repeats: int, call: Any) -> list[float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        await call()
        times.append(time.perf_counter() - started)
    return times


async def _update_counts(dsn: str) -> tuple[int, int]:
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'jobs'"
        )
    finally:
        await conn.close()
    assert row is not None
    return int(row["n_tup_upd"]), int(row["n_tup_hot_upd"])


async def _hot_ratio(dsn: str, rounds: int) -> tuple[float, int]:
    """HOT share of the row updates of a heartbeat burst; (ratio, updates counted)."""
    before_upd, before_hot = await _update_counts(dsn)
    conn = await asyncpg.connect(dsn)
    try:
        leases = await conn.fetch("SELECT id, lease FROM jobs WHERE state = 'running'")
    finally:
        await conn.close()
    store = PostgresJobStore(dsn, backlog_size=200)
    await store.open()
    try:
        for _ in range(rounds):

            async def beat(i: int) -> bool:
                return await store.heartbeat(str(leases[i]["id"]), leases[i]["lease"])

            await gather_limited(len(leases), beat, concurrency=HEARTBEAT_CONCURRENCY)
    finally:
        # A backend reports its counts at the latest when it exits.
        await store.close()
    expected = rounds * len(leases)
    deadline = time.monotonic() + STATS_WITHIN_S
    while True:
        upd, hot = await _update_counts(dsn)
        if upd - before_upd >= expected or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    updates = upd - before_upd
    return ((hot - before_hot) / updates if updates else 0.0), updates


async def _explain(dsn: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "EXPLAIN (ANALYZE, BUFFERS) " + FIND_STALE_SQL, STALE_AFTER_S, LIMIT
        )
    finally:
        await conn.close()
    return [r[0] for r in rows]


async def _scan(ctx: Context, dsn: str) -> tuple[list[float], list[float], list[str]]:
    """The store's scan and the raw one, timed; and the plan."""
    sizes = ctx.sizes
    store = PostgresJobStore(dsn, backlog_size=200)
    await store.open()
    try:
        found = await store.find_stale(STALE_AFTER_S, limit=LIMIT)
        if len(found) != sizes.scan_stale:
            raise RuntimeError(f"the scan found {len(found)} stale jobs, not {sizes.scan_stale}")

        async def scan() -> None:
            await store.find_stale(STALE_AFTER_S, limit=LIMIT)

        times = await _timed(sizes.scan_repeats, scan)
    finally:
        await store.close()
    conn = await asyncpg.connect(dsn)
    try:

        async def raw_scan() -> None:
            await conn.fetch(FIND_STALE_SQL, STALE_AFTER_S, LIMIT)

        await raw_scan()
        raw_times = await _timed(sizes.scan_repeats, raw_scan)
    finally:
        await conn.close()
    return times, raw_times, await _explain(dsn)


async def run(ctx: Context) -> list[Result]:
    sizes = ctx.sizes
    params: dict[str, Any] = {
        "jobs": sizes.scan_jobs,
        "running": sizes.scan_running,
        "stale": sizes.scan_stale,
        "repeats": sizes.scan_repeats,
    }
    results = []
    for layout in ("spread", "recent"):
        async with scratch_database("bench_scan", base=ctx.admin_dsn) as dsn:
            await _load(dsn, sizes.scan_jobs, sizes.scan_running, sizes.scan_stale, layout)
            times, raw_times, plan = await _scan(ctx, dsn)
            if layout == "spread":
                hot, updates = await _hot_ratio(dsn, sizes.hot_rounds)
        scan_ms, raw_ms = median(times) * 1e3, median(raw_times) * 1e3
        extra = {
            "p99_ms": round(percentile(times, 99) * 1e3, 3),
            "raw_p99_ms": round(percentile(raw_times, 99) * 1e3, 3),
            "plan": plan,
        }
        scans = Series("c", f"stale_scan_ms_{layout}", "ms", {**params, "layout": layout})
        results.append(
            scans.result("postgres", scan_ms, raw_ms, at_most(SCAN_GOAL_MS, "ms"), extra)
        )
    hot_params = {**params, "layout": "spread", "rounds": sizes.hot_rounds, "updates": updates}
    hot_updates = Series("c", "heartbeat_hot_ratio", "ratio", hot_params)
    results.append(hot_updates.result("postgres", hot, None, at_least_share(HOT_GOAL)))
    return results
