"""``scripts/bench peer``: jobspine against saq on the workload of issue 18.

The workload (sizes as options): ``--jobs`` jobs of ``--reports`` progress reports and
``--checkpoints`` checkpoints each, one worker process at ``--concurrency``, one client
process that creates (enqueues) every job and watches every one live. Targets: jobspine on
the memory store and on Postgres (at ``PROGRESS_EVENTS_PER_S=0`` and at the default 10),
saq (PyPI ``saq``, installed into ``.bench-venv`` on first use) on Redis and on Postgres.
The rounds alternate the targets in one run; every number is the median of the rounds,
with the range beside it.

Each run is checked: every job ended once, completed, on its first attempt; jobspine's
events of each job have every seq once (1..n, no gap, no repeat); the client saw each job's
final progress (100) before or with its end. Measured: jobs/s (first create to the last
end seen by the client), the progress-to-client latency (the handler stamps each report
with its send time), the server side's CPU per job (the web process and its Postgres
backends for jobspine; ``redis-server`` or the Postgres backends for saq) and the CPU per
job of all processes (server side, worker, client).

``--smoke`` runs jobspine alone at tiny sizes (saq needs PyPI): what CI runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from scripts.benchsuite.peer.profiling import private_postgres
from scripts.benchsuite.peer.runs import MATCHING, TARGETS, Workload, ensure_saq, run_once
from scripts.benchsuite.profile import self_by_package
from scripts.benchsuite.profile import summarise as stack_summary
from scripts.benchsuite.report import Column, Line, emit, table, text

BENCH = "peer"
DEFAULT_LIMIT = 10
#: Numbers summarised over the rounds (median and range).
NUMBERS = (
    "jobs_per_s",
    "latency_p50_ms",
    "latency_p99_ms",
    "server_cpu_ms_per_job",
    "web_cpu_ms_per_job",
    "postgres_cpu_ms_per_job",
    "worker_cpu_ms_per_job",
    "client_cpu_ms_per_job",
    "all_cpu_ms_per_job",
)


def _range(values: list[float]) -> str:
    return f"{min(values):g}-{max(values):g}" if values else "-"


COLUMNS = (
    text("target"),
    Column("limit", "limit", show=lambda v: "-" if v is None else str(v)),
    Column("jobs_per_s", "jobs/s"),
    text("jobs_per_s_range", "range"),
    Column("vs_saq_jobs_per_s", "vs saq"),
    Column("latency_p99_ms", "p99 ms"),
    text("latency_p99_ms_range", "range"),
    Column("server_cpu_ms_per_job", "server ms/job"),
    text("server_cpu_ms_per_job_range", "range"),
    Column("all_cpu_ms_per_job", "all ms/job"),
    text("all_cpu_ms_per_job_range", "range"),
    Column("ok", "checks"),
)


def summarise(runs: list[Line]) -> list[dict[str, Any]]:
    """One row per (target, limit): medians and ranges over the rounds, and the ratio of
    jobspine's jobs/s to saq's on the matching backend (median of the per-round ratios)."""
    keys = list(dict.fromkeys((r["target"], r["limit"]) for r in runs))
    saq_rate = {
        (r["target"], r["round"]): r["jobs_per_s"]
        for r in runs
        if r["limit"] is None and r.get("jobs_per_s")
    }
    rows = []
    for target, limit in keys:
        mine = [r for r in runs if r["target"] == target and r["limit"] == limit]
        row: dict[str, Any] = {"target": target, "limit": limit, "rounds": len(mine)}
        for key in NUMBERS:
            values = [r[key] for r in mine if r.get(key) is not None]
            row[key] = round(statistics.median(values), 2) if values else None
            row[f"{key}_range"] = _range(values)
        ratios = [
            r["jobs_per_s"] / saq_rate[(MATCHING[target], r["round"])]
            for r in mine
            if (MATCHING.get(target), r["round"]) in saq_rate and r.get("jobs_per_s")
        ]
        row["vs_saq_jobs_per_s"] = round(statistics.median(ratios), 2) if ratios else None
        row["ok"] = all(r["ok"] for r in mine)
        rows.append(row)
    return rows


async def bench(args: argparse.Namespace, workload: Workload) -> list[Line]:
    saq_python = ensure_saq() if any(t.startswith("saq") for t in args.targets) else None
    lines: list[Line] = []
    for round_ in range(1, args.rounds + 1):
        for target in args.targets:
            limits: list[int | None] = [None] if target.startswith("saq") else list(args.limits)
            for limit in limits:
                fields: dict[str, Any] = {"target": target, "limit": limit, "round": round_}
                try:
                    fields |= await run_once(
                        target, limit, workload, tag=f"{round_}-{uuid.uuid4().hex[:6]}",
                        saq_python=saq_python,
                    )  # fmt: skip
                except RuntimeError as exc:  # a run that failed is a line that says so
                    fields |= {"ok": False, "error": str(exc)[-2000:]}
                lines.append(emit(BENCH, {**fields, "params": workload.params()}))
    return lines


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/bench peer",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--reports", type=int, default=20, help="progress reports per job")
    parser.add_argument("--checkpoints", type=int, default=4, help="checkpoints per job")
    parser.add_argument("--concurrency", type=int, default=20, help="of the one worker")
    parser.add_argument("--poll", dest="poll_s", type=float, default=0.05, help="worker claim"
                        " poll (jobspine) and client poll (saq on Postgres), seconds")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--targets",
        type=lambda v: [t.strip() for t in v.split(",") if t.strip()],
        default=list(TARGETS),
        help="comma-separated, from " + ",".join(TARGETS),
    )
    parser.add_argument(
        "--limits",
        type=lambda v: [int(x) for x in v.split(",") if x.strip()],
        default=[0, DEFAULT_LIMIT],
        help="PROGRESS_EVENTS_PER_S values for jobspine (default 0,10)",
    )
    parser.add_argument("--out", type=Path, help="also write the summary rows to this file")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="instead of measuring: one run of each target, jobspine's web process under"
        " py-spy (stacks in DIR), the Postgres targets on a private cluster with"
        " pg_stat_statements",
    )
    parser.add_argument(
        "--smoke", "--tiny", action="store_true",
        help="jobspine only, 10 jobs x 4 reports x 1 checkpoint, one round (no network)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.smoke:
        args.jobs, args.reports, args.checkpoints, args.concurrency = 10, 4, 1, 4
        args.rounds = 1
        args.targets = [t for t in args.targets if t.startswith("jobspine")]
    unknown = sorted(set(args.targets) - set(TARGETS))
    if unknown:
        parser.error(f"unknown target(s): {', '.join(unknown)}")
    if min(args.jobs, args.reports, args.concurrency, args.rounds) < 1 or args.checkpoints < 0:
        parser.error("--jobs, --reports, --concurrency and --rounds must be positive")
    return args


async def profile(args: argparse.Namespace, workload: Workload, out: Path) -> None:
    """One profiled run of each target (jobspine at each limit): py-spy of jobspine's web
    process, and ``pg_stat_statements`` of every Postgres target (saq's too) on a private
    cluster; prints where the time went."""
    await asyncio.to_thread(out.mkdir, parents=True, exist_ok=True)
    saq_python = ensure_saq() if "saq-postgres" in args.targets else None
    for target in [t for t in args.targets if t != "saq-redis"]:
        limits: list[int | None] = [None] if target.startswith("saq") else list(args.limits)
        for limit in limits:
            stacks = out / f"{target}-limit{limit}.txt"
            async with contextlib.AsyncExitStack() as stack:
                if target.endswith("postgres"):
                    await stack.enter_async_context(private_postgres())
                result = await run_once(
                    target, limit, workload, tag="profile", saq_python=saq_python, profile=stacks
                )
            spied = target.startswith("jobspine")
            fields = {
                "target": target,
                "limit": limit,
                "round": "profile",
                "stacks": str(stacks) if spied else None,
                "self_by_package": self_by_package(stacks) if spied else None,
                **{k: result.get(k) for k in ("jobs_per_s", "server_cpu_ms_per_job", "ok")},
                "statements": result.get("statements"),
                "statements_per_job": result.get("statements_per_job"),
            }
            emit(BENCH, {**fields, "params": workload.params()})
            print(f"\n== {target}, PROGRESS_EVENTS_PER_S={limit}")
            if spied:
                print(f"{stacks}\n{stack_summary(stacks, 15)}")
            per_job = result.get("statements_per_job")
            if per_job is not None:
                print(f"statements sent per job (BEGIN and COMMIT included): {per_job}")
            for row in result.get("statements") or []:
                print(f"{row['calls']:>7} calls {row['total_ms']:>9.1f} ms  {row['query']}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    workload = Workload.of(args)
    if args.profile is not None:
        asyncio.run(profile(args, workload, args.profile))
        return 0
    lines = asyncio.run(bench(args, workload))
    rows = summarise(lines)
    for row in rows:
        emit(BENCH, {**row, "round": "median", "params": workload.params()})
    print()
    print(table(rows, COLUMNS))
    if args.out is not None:
        import json

        args.out.write_text(json.dumps({"runs": lines, "summary": rows}, indent=2) + "\n")
    failed = [r for r in rows if not r["ok"]]
    if failed:
        print(f"\nchecks FAILED: {', '.join(r['target'] for r in failed)}")
        return 1
    return 0
