"""``scripts/bench SUBCOMMAND [ARGS]``: every benchmark of jobspine, behind one command.

Each subcommand prints one JSON line per result (:mod:`scripts.benchsuite.report`: ``bench``,
its own keys, ``date``, ``machine``), then one table; ``scripts/bench SUBCOMMAND --help``
tells its options. Servers, workers, Redis and scratch databases come from the harness the
tests share (:mod:`tests.support.processes`, :mod:`tests.support.databases`).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence

#: Subcommand -> (module under scripts.benchsuite, what it measures).
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "suite": ("suite", "jobspine against raw python-socketio/asyncpg: measures a-e (default)"),
    "heartbeat-store": ("heartbeat_store", "Postgres store heartbeats, batching off vs on"),
    "progress-store": ("progress_store", "Postgres store progress reports, grouping off vs on"),
    "backpressure": ("backpressure", "a client that stops reading: memory and others' p99"),
    "scaling": ("scaling", "events per second across web instances over Redis"),
    "wakeup": ("wakeup", "create -> claim latency of an idle worker, push vs poll"),
    "client-resync": ("client_resync", "Python client: reconnect -> live with N watched jobs"),
    "peer": ("peer.main", "jobspine against saq (Redis, Postgres): the issue 18 workload"),
    "micro": ("micro", "jobspine's own cost per heartbeat, in process"),
    "profile": ("profile", "py-spy of a server under the load of measure a or b"),
    "report": ("report", "a suite results file (--out) as a Markdown table"),
}


def usage() -> str:
    width = max(map(len, SUBCOMMANDS))
    lines = [(__doc__ or "").strip(), "", "subcommands:"]
    lines += [f"  {name.ljust(width)}  {what}" for name, (_, what) in SUBCOMMANDS.items()]
    lines += ["", "Without a subcommand (or with options only) it runs `suite`."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    name = "suite" if not args or args[0].startswith("-") else args.pop(0)
    if name not in SUBCOMMANDS:
        print(f"scripts/bench: unknown subcommand {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"scripts.benchsuite.{SUBCOMMANDS[name][0]}")
    run: Callable[[Sequence[str]], int] = module.main
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
