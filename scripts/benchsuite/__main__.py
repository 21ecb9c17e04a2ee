"""``python -m scripts.benchsuite [--smoke] [--out FILE] [--only a,b,…]``: the benchmark suite.

Starts the raw python-socketio baseline and jobspine (memory and Postgres stores) as child
processes on loopback, drives them from this process, and prints one JSON line per measure,
then a table and the goals met or not. ``scripts/bench`` is the one command around it.
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
from scripts.benchsuite.common import Result, machine, now_iso
from scripts.benchsuite.context import FULL, SMOKE, Context, Sizes
from scripts.benchsuite.database import admin_dsn, scratch_database
from scripts.benchsuite.processes import SERVER_ROOT_ENV, jobspine, raw
from scripts.benchsuite.report import table
from scripts.benchsuite.wire import new_session

MEASURES = ("a", "b", "c", "d", "e")
#: Large enough that the replay measure's missed events are all in the backlog.
BACKLOG_SIZE = 256


def _raise_fd_limit() -> None:
    """Thousands of idle clients, and the servers (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def _run(sizes: Sizes, only: Sequence[str], emit: Any) -> list[Result]:
    results: list[Result] = []
    base = admin_dsn()
    async with contextlib.AsyncExitStack() as stack:
        http = await stack.enter_async_context(new_session())
        needs_servers = any(m in only for m in ("a", "b", "d"))
        servers: dict[str, Any] = {}
        raw_server = None
        if needs_servers:
            dsn = await stack.enter_async_context(scratch_database(base, "web"))
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
                emit(result)
            results.extend(found)
    return results


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scripts/bench", description=__doc__)
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
    run = {"date": now_iso(), "machine": machine(), "smoke": args.smoke}
    if args.server_root is not None:
        run["server_root"] = str(args.server_root.resolve())
    lines: list[dict[str, Any]] = []

    def emit(result: Result) -> None:
        line = result.line(run)
        lines.append(line)
        print(json.dumps(line), flush=True)

    started = time.monotonic()
    results = asyncio.run(_run(sizes, only, emit))
    print()
    print(table(results))
    print(f"\n{len(results)} results in {time.monotonic() - started:.0f} s")
    if args.out is not None:
        args.out.write_text(json.dumps({"run": run, "results": lines}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
