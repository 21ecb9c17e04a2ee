#!/usr/bin/env python
"""Watch one job live in a terminal: a progress bar, and a line per state change.

    python scripts/watch_job.py --url http://127.0.0.1:8080 --token "$USER_JWT" <job_id>

Exit status: 0 when the job completes, 1 when it fails or is cancelled, 2 when it cannot be
watched (bad token, unknown job, server unreachable). With ``--follow`` it keeps watching
after the job ends (a restart or resume shows up) until interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys

from workers.client import JobWatcher, TerminalView, WatchError, exit_status
from workers.sdk.rpc import token_from_file


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("job_id")
    parser.add_argument("--url", default=os.environ.get("JOBSPINE_URL", "http://127.0.0.1:8080"))
    parser.add_argument(
        "--token",
        default=os.environ.get("JOBSPINE_USER_TOKEN"),
        help="a user JWT (default: $JOBSPINE_USER_TOKEN)",
    )
    parser.add_argument(
        "--token-file",
        default=os.environ.get("JOBSPINE_TOKEN_FILE"),
        help="a file holding the user JWT, read again at every reconnect, so a token rotated "
        "there is used once the server ends the expired session (default: $JOBSPINE_TOKEN_FILE)",
    )
    parser.add_argument("--follow", action="store_true", help="keep watching after the job ends")
    args = parser.parse_args(argv)
    if not args.token and not args.token_file:
        parser.error("--token (or $JOBSPINE_USER_TOKEN) or --token-file is required")
    return args


async def watch(args: argparse.Namespace) -> int:
    columns = shutil.get_terminal_size((100, 20)).columns
    view = TerminalView(sys.stdout, max_length=max(40, columns - 1))
    watcher = JobWatcher(
        url=args.url,
        token=token_from_file(args.token_file) if args.token_file else args.token,
        job_id=args.job_id,
        on_change=view.show,
        on_message=view.message,
        follow=args.follow,
    )
    try:
        job = await watcher.run()
    except WatchError as exc:
        view.message(f"error: {exc}")
        return 2
    return exit_status(job)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return asyncio.run(watch(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
