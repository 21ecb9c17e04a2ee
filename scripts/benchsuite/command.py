"""``scripts/bench`` as a child process, its JSON lines read back: how the smoke tests
(``tests/test_bench_smoke.py``, ``tests/test_progress_benches.py``) run the benches for real,
against the PostgreSQL server the tests use."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence

import attrs

from scripts.benchsuite.report import Line
from tests.support.databases import BASE_DSN_ENV, base_dsn
from tests.support.processes import ROOT

COMMAND = ROOT / "scripts" / "bench"


@attrs.frozen
class BenchRun:
    returncode: int
    stdout: str
    stderr: str

    def lines(self) -> list[Line]:
        """The JSON lines it printed (the table after them is not JSON)."""
        return [json.loads(line) for line in self.stdout.splitlines() if line.startswith("{")]

    def tail(self) -> str:
        """The end of what it printed, to tell why it failed."""
        return self.stdout[-4000:] + self.stderr[-4000:]


def run_bench(args: Sequence[str], *, within_s: float) -> BenchRun:
    """``scripts/bench ARGS`` from the repository's root, on the tests' PostgreSQL server
    (:func:`tests.support.databases.base_dsn`); :class:`subprocess.TimeoutExpired` after
    ``within_s``."""
    done = subprocess.run(
        [str(COMMAND), *args],
        cwd=ROOT,
        env={**os.environ, BASE_DSN_ENV: base_dsn()},
        capture_output=True,
        text=True,
        timeout=within_s,
        check=False,
    )
    return BenchRun(done.returncode, done.stdout, done.stderr)


__all__ = ["COMMAND", "BenchRun", "run_bench"]
