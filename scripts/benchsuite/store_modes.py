"""What ``scripts/bench heartbeat-store`` and ``scripts/bench progress-store`` share.

Both seed running jobs in a scratch database, clone it once per mode (batching off, then on,
so that both start from the same pages), print one JSON line per mode and then the report
table, and drop every scratch database at the end. Each keeps what is its own: its loop,
what its ``run_mode`` reads from the database and puts in its line, its own columns and
its summary; this module holds the rest (:func:`drive` runs one mode).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import asyncpg
import attrs

from scripts.benchsuite import cli
from scripts.benchsuite.report import Column, Line, emit, table, text
from server.errors import JobspineError
from server.store.postgres import PostgresJobStore
from server.store.postgres.migrator import migrate
from server.store.postgres.pool import DEFAULT_POOL
from server.store.postgres.write_batch import WriteBatcher
from tests.support.databases import base_dsn, connected, drop_with, dsn_for, quote

#: (job id, lease) of each seeded running job.
Jobs = Sequence[tuple[str, str]]
#: ``run_mode(mode)``: one mode on its own clone of the template, its result line.
RunMode = Callable[["Mode"], Awaitable[Line]]
T = TypeVar("T")


async def until_no_backends(conn: asyncpg.Connection[Any], database: str) -> None:
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


async def seed(
    dsn: str, count: int, *, job_input: str = "{}", events: bool = False
) -> list[tuple[str, str]]:
    """Migrates ``dsn`` and writes ``count`` running jobs with a lease each, in bulk (the
    store's own claim path is not what is measured); with ``events``, also each job's first
    two events (``job:created``, ``job:started``, so its seq is 2). Vacuumed so that every
    clone starts with clean pages."""
    await migrate(dsn)
    ids = [uuid.uuid4() for _ in range(count)]
    leases = [f"lease-{uuid.uuid4().hex[:12]}" for _ in range(count)]
    async with connected(dsn) as conn:
        await conn.execute(
            "INSERT INTO jobs (id, user_id, type, input, created_at, updated_at, epoch, seq)"
            " SELECT id, 'bench', 'research', $2::jsonb, now(), now(), 'e1', 1"
            " FROM unnest($1::uuid[]) AS t(id)",
            ids,
            job_input,
        )
        await conn.execute(
            "UPDATE jobs SET state = 'running', lease = t.lease, worker_id = 'bench', seq = $3,"
            " started_at = now(), last_heartbeat_at = now(), attempt = 1"
            " FROM unnest($1::uuid[], $2::text[]) AS t(id, lease) WHERE jobs.id = t.id",
            ids,
            leases,
            2 if events else 1,
        )
        if events:
            await conn.execute(
                "INSERT INTO job_events (job_id, seq, type, at, data)"
                " SELECT id, s, CASE s WHEN 1 THEN 'job:created' ELSE 'job:started' END,"
                " now(), '{}'"
                " FROM unnest($1::uuid[]) AS t(id), generate_series(1, 2) AS s",
                ids,
            )
        await conn.execute(
            "VACUUM (ANALYZE) jobs, job_events" if events else "VACUUM (ANALYZE) jobs"
        )
    return [(str(i), lease) for i, lease in zip(ids, leases, strict=True)]


@dataclass(frozen=True)
class Mode:
    """One mode of a run: batching off or on (group commit), with the seeded ``jobs`` of the
    ``template`` database on the server of ``base``, and the command line's ``args``."""

    base: str
    template: str
    jobs: Jobs
    args: argparse.Namespace
    batched: bool

    @property
    def name(self) -> str:
        return "on" if self.batched else "off"

    async def clone(self) -> tuple[str, str]:
        """A new database copied from the template for this mode: its name and URL."""
        name = f"{self.template}_{self.name}"
        async with connected(self.base) as admin:
            await until_no_backends(admin, self.template)
            await admin.execute(f"CREATE DATABASE {quote(name)} TEMPLATE {quote(self.template)}")
        return name, dsn_for(name, self.base)


@dataclass
class Tally:
    """How long the calls that succeeded took, and the errors of those that did not."""

    latencies: list[float] = field(default_factory=list)  # seconds
    errors: Counter[str] = field(default_factory=Counter)  # by exception class name

    async def time(self, call: Callable[[], Awaitable[T]]) -> T | None:
        """``call()``'s result, timed; None when it raised a :class:`JobspineError`."""
        started = time.perf_counter()
        try:
            result = await call()
        except JobspineError as exc:
            self.errors[type(exc).__name__] += 1
            return None
        self.latencies.append(time.perf_counter() - started)
        return result

    def result(self) -> Line:
        """``errors``, ``p50_ms`` and ``p99_ms`` (None when nothing succeeded)."""
        ordered = sorted(self.latencies)
        if not ordered:
            return {"errors": dict(self.errors), "p50_ms": None, "p99_ms": None}
        return {
            "errors": dict(self.errors),
            "p50_ms": round(statistics.median(ordered) * 1e3, 2),
            "p99_ms": round(ordered[int(0.99 * (len(ordered) - 1))] * 1e3, 2),
        }


#: ``loop(store, tally, share, deadline)``: one loop's calls on its share of the jobs.
Loop = Callable[[PostgresJobStore, Tally, Jobs, float], Awaitable[None]]


@dataclass(frozen=True)
class ModeRun:
    """What one mode did: the store its loops drove (its batcher holds the counters), their
    tally and seconds, and the scratch database's counters before and after."""

    mode: Mode
    store: PostgresJobStore
    tally: Tally
    elapsed: float
    before: Line
    after: Line

    def head(self, noun: str) -> Line:
        """The first keys of the mode's result: what was run, ``{noun}s`` (the calls that
        succeeded) and ``{noun}s_per_s``."""
        mode, done = self.mode, len(self.tally.latencies)
        return {
            "mode": mode.name,
            "jobs": len(mode.jobs),
            "loops": mode.args.loops,
            "pool": mode.args.pool,
            "seconds": round(self.elapsed, 2),
            f"{noun}s": done,
            f"{noun}s_per_s": round(done / self.elapsed),
        }

    def batching(
        self, batcher: WriteBatcher[Any, Any] | None, noun: str, *, unbatched_statements: int
    ) -> Line:
        """``statements`` (``unbatched_statements`` with batching off), ``flushes`` and
        ``{noun}s_per_flush`` (None with batching off)."""
        done = len(self.tally.latencies)
        return {
            "statements": batcher.statements if batcher else unbatched_statements,
            "flushes": batcher.flushes if batcher else None,
            f"{noun}s_per_flush": round(done / batcher.flushes, 1)
            if batcher and batcher.flushes
            else None,
        }


async def drive(
    mode: Mode,
    *,
    store_options: Mapping[str, Any],
    counters: Callable[[asyncpg.Connection[Any]], Awaitable[Line]],
    loop: Loop,
    shares: Sequence[Jobs],
) -> ModeRun:
    """``mode`` on its own clone: a store of ``--pool`` connections and ``store_options``,
    ``loop`` on every share at once for ``--seconds``; ``counters`` are read before and once
    the store's connections have ended (a backend reports its last counts when it exits)."""
    name, dsn = await mode.clone()
    pool = mode.args.pool
    async with connected(dsn) as reader:
        before = await counters(reader)
        connections = attrs.evolve(DEFAULT_POOL, min_size=pool, max_size=pool)
        store = PostgresJobStore(dsn, pool=connections, **store_options)
        tally = Tally()
        await store.open()
        started = time.perf_counter()
        try:
            deadline = started + mode.args.seconds
            await asyncio.gather(*(loop(store, tally, share, deadline) for share in shares))
            elapsed = time.perf_counter() - started
        finally:
            await store.close()
        await until_no_backends(reader, name)
        after = await counters(reader)
    return ModeRun(mode=mode, store=store, tally=tally, elapsed=elapsed, before=before, after=after)


async def drop_scratch(base: str, names: Sequence[str]) -> None:
    async with connected(base) as admin:
        for name in names:
            await drop_with(admin, name)


def columns(mode: str, noun: str, short: str, own: Sequence[Column]) -> list[Column]:
    """A store bench's report table: the ``mode`` (what is off or on), the rate of ``noun``
    calls and their latency, statements, ``noun``s per flush, commits, ``own`` columns and
    the errors; ``short`` is the noun in titles."""
    return [
        text("mode", mode),
        Column(f"{noun}s_per_s", f"{short}/s"),
        Column("p50_ms", "p50 ms"),
        Column("p99_ms", "p99 ms"),
        Column("statements", "statements"),
        Column(f"{noun}s_per_flush", f"{short}/flush"),
        Column("commits", "commits"),
        *own,
        Column("errors", "errors"),
    ]


@dataclass(frozen=True)
class StoreBench:
    """One script's specifics."""

    bench: str  # the subcommand: "heartbeat-store", "progress-store"
    doc: str | None  # the module's docstring: its first line describes it in --help
    loop: str  # what each loop does, for the help of --loops: "heartbeat", "report"
    prefix: str  # of the scratch databases' names
    seed: Callable[[str, int], Awaitable[Jobs]]  # seed(dsn, jobs) of the template
    run_mode: RunMode
    columns: Sequence[Column]  # of the report table
    summary: str = ""  # appended to the line printed above the table


async def bench(spec: StoreBench, args: argparse.Namespace) -> list[Line]:
    base: str = args.dsn
    template = f"{spec.prefix}{uuid.uuid4().hex[:8]}"
    scratch = [template, f"{template}_off", f"{template}_on"]
    try:
        async with connected(base) as admin:
            await admin.execute(f"CREATE DATABASE {quote(template)} TEMPLATE template0")
        jobs = await spec.seed(dsn_for(template, base), args.jobs)
        results = []
        for batched in (False, True):
            result = await spec.run_mode(Mode(base, template, jobs, args, batched))
            results.append(emit(spec.bench, result))
        return results
    finally:
        await drop_scratch(base, scratch)


def parse_args(spec: StoreBench, argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = cli.parser(spec.bench, spec.doc)
    parser.add_argument(
        "--dsn",
        default=base_dsn(),
        help="a server's maintenance database; scratch databases are created beside it",
    )
    parser.add_argument("--jobs", type=int, default=1000, help="running jobs (N)")
    parser.add_argument("--loops", type=int, default=200, help=f"concurrent {spec.loop} loops (K)")
    parser.add_argument("--seconds", type=float, default=10.0, help="per mode (T)")
    parser.add_argument("--pool", type=int, default=10, help="the store's pool size")
    parser.add_argument(
        "--tiny", action="store_true", help="a few seconds: 50 jobs, 20 loops, 1 s per mode"
    )
    args = parser.parse_args(argv)
    if args.tiny:
        args.jobs, args.loops, args.seconds = 50, 20, 1.0
    if args.jobs < 1 or args.loops < 1 or args.seconds <= 0:
        parser.error("--jobs, --loops and --seconds must be positive")
    return args


def main(spec: StoreBench, argv: Sequence[str] | None = None) -> int:
    args = parse_args(spec, argv)
    try:
        results = asyncio.run(bench(spec, args))
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"benchmark failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print()
    print(
        f"{args.jobs} running jobs, {args.loops} loops, {args.seconds:g} s per mode,"
        f" pool {args.pool}{spec.summary}"
    )
    print(table(results, spec.columns))
    return 0
