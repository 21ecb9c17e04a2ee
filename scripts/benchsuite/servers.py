"""The servers under test, as child processes of the shared harness
(:mod:`tests.support.processes`): jobspine (``python -m server``) and the raw baseline
(``python -m scripts.benchsuite.raw_server``), each on a free loopback port."""

from __future__ import annotations

import os
from contextlib import AbstractAsyncContextManager
from pathlib import Path

from tests.support.processes import ROOT, WEB_DEFAULTS, WebProcess, http_process

#: A running server under test: its URL, pid, CPU time and memory.
Server = WebProcess
#: Where ``python -m server`` runs from: another checkout (say, a ``git worktree`` of an
#: older commit) measures that version's server against the same load and baseline.
SERVER_ROOT_ENV = "JOBSPINE_BENCH_SERVER_ROOT"


def jobspine(
    name: str, *, database_url: str | None = None, **env: str
) -> AbstractAsyncContextManager[Server]:
    """``python -m server`` with the harness's secret, no call limits and no live progress
    limit (the benches measure how fast events flow; ``env`` may set one); Postgres when
    ``database_url`` is given."""
    settings = {"PROGRESS_EVENTS_PER_S": "0", **env}
    if database_url is not None:
        settings["DATABASE_URL"] = database_url
    root = Path(os.environ.get(SERVER_ROOT_ENV) or ROOT).resolve()
    if root != ROOT:
        settings["PYTHONPATH"] = os.pathsep.join((str(root), str(root / "packages" / "shared")))
    return http_process(
        name, ["-m", "server"], {**WEB_DEFAULTS, **settings}, cwd=root, show_output=False
    )


def raw(name: str = "raw") -> AbstractAsyncContextManager[Server]:
    return http_process(name, ["-m", "scripts.benchsuite.raw_server"], {}, show_output=False)


__all__ = ["SERVER_ROOT_ENV", "Server", "jobspine", "raw"]
