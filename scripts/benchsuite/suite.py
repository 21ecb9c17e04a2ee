"""``scripts/bench suite [--smoke] [--out FILE] [--only a,b,…]``: jobspine against the raw
libraries, measures a-e of docs/performance.md.

Starts the raw python-socketio baseline and jobspine (memory and Postgres stores) as child
processes on loopback, drives them from this process, and prints one JSON line per measure,
then a table and the goals met or not.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from scripts.benchsuite import fanout, heartbeats, idle, replay, scan
from scripts.benchsuite.common import Result
from scripts.benchsuite.context import FULL, SMOKE, Context, Sizes
from scripts.benchsuite.report import Column, Line, emit, table, text
from scripts.benchsuite.servers import SERVER_ROOT_ENV, jobspine, raw
from scripts.benchsuite.wire import new_session
from tests.support.databases import base_dsn, scratch_database

BENCH = "suite"
MEASURES = ("a", "b", "c", "d", "e")
COLUMNS = (
    text("measure"),
    text("name"),
    text("store"),
    Column("value", "value"),
    text("unit"),
    Column("raw", "raw"),
    Column("ratio", "ratio", show=lambda r: "-" if r is None else f"{r:.2f}"),
    text("goal"),
    Column(
        "met", "met", show=lambda m: "-" if m is None else "met" if m else "NOT MET", numeric=False
    ),
)
#: Large enough that the replay measure's missed events are all in the backlog.
BACKLOG_SIZE = 256


def _raise_fd_limit() -> None:
    """Thousands of idle clients, and the servers (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def _run(sizes: Sizes, only: Sequence[str], print_line: Any) -> list[Result]:
    results: list[Result] = []
    base = base_dsn()
    async with contextlib.AsyncExitStack() as stack:
        http = await stack.enter_async_context(new_session())
        needs_servers = any(m in only for m in ("a", "b", "d"))
        servers: dict[str, Any] = {}
        raw_server = None
        if needs_servers:
            dsn = await stack.enter_async_context(scratch_database("bench_web", base=base))
            raw_server = await stack.enter_async_context(raw())
            env = {"BACKLOG_SIZE": str(BACKLOG_SIZE)}
            servers["memory"] = await stack.enter_async_context(jobspine("memory", **env))
            servers["postgres"] = await stack.enter_async_context(
                jobspine("postgres", database_url=dsn, **env)
            )
        ctx = Context(sizes=sizes, http=http, raw=raw_server, jobspine=servers, admin_dsn=base)  # type: ignore[arg-type]
        steps = {
            "a": heartbeats.run,
            "b": fanout.run,
            "c": scan.run,
            "d": replay.run,
            "e": idle.run,
        }
        for measure in MEASURES:
            if measure not in only:
                continue
            started = time.monotonic()
            found = await steps[measure](ctx)
            for result in found:
                result.params.setdefault("measure_s", round(time.monotonic() - started, 1))
                print_line(result)
            results.extend(found)
    return results


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scripts/bench suite",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: seconds, for CI")
    parser.add_argument("--out", type=Path, help="also write every result to this JSON file")
    parser.add_argument(
        "--server-root",
        type=Path,
        help="run jobspine's server from this checkout (e.g. a git worktree of an older "
        "commit) to compare versions; the load and the baseline stay this checkout's",
    )
    parser.add_argument(
        "--only", default=",".join(MEASURES), help="comma-separated measures (default a,b,c,d,e)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    only = [m.strip() for m in args.only.split(",") if m.strip()]
    unknown = sorted(set(only) - set(MEASURES))
    if unknown:
        _parser().error(f"unknown measure(s): {', '.join(unknown)}")
    _raise_fd_limit()
    if args.server_root is not None:
        os.environ[SERVER_ROOT_ENV] = str(args.server_root.resolve())
    sizes = SMOKE if args.smoke else FULL
    run: dict[str, Any] = {"smoke": args.smoke}
    if args.server_root is not None:
        run["server_root"] = str(args.server_root.resolve())
    lines: list[Line] = []

    def print_line(result: Result) -> None:
        lines.append(emit(BENCH, {**result.fields(), **run}))

    started = time.monotonic()
    results = asyncio.run(_run(sizes, only, print_line))
    print()
    print(table(lines, COLUMNS))
    print(f"\n{len(results)} results in {time.monotonic() - started:.0f} s")
    if args.out is not None:
        args.out.write_text(json.dumps({"run": run, "results": lines}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
