"""The TypeScript client ``@jobspine/client`` (``packages/client-js``).

- A fresh ``tsc --strict`` build of ``src/`` compiles and is what ``dist/`` holds: ``dist/``
  is not committed (``npm run build``, which ``scripts/test`` and ``npm install`` run), and
  every JS test, the browser tests and the dashboard's vendored copy
  (``scripts/vendor_ui.py``, checked by ``tests/test_ui_static.py``) read it.
- Its Node tests pass (``node --test``): units and the conformance fold without a server;
  live tests against real ``python -m server`` processes that they start, kill and restart
  themselves (``test/support/live.mjs``), with a fresh Postgres database each.

Needs node, ``npm install --prefix packages/client-js`` and its build (``scripts/test`` runs
all three); without them these tests skip, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import filecmp
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from jobspine_client.fold import ALWAYS, FOLDED_FIELDS
from tests.support.node import CLIENT_BUILD, CLIENT_JS, ROOT, require_client_build

LIVE_TESTS = sorted((CLIENT_JS / "test" / "live").glob("*.test.mjs"))
TSC = CLIENT_JS / "node_modules" / "typescript" / "bin" / "tsc"
#: Bounds one node run; a healthy one takes seconds.
NODE_TIMEOUT_S = 240
#: What the live tests and the bench need to start servers of their own.
SERVER_ENV = {"JOBSPINE_ROOT": str(ROOT), "JOBSPINE_PYTHON": sys.executable}


def _files(root: Path) -> dict[str, Path]:
    return {str(path.relative_to(root)): path for path in sorted(root.rglob("*")) if path.is_file()}


def _node(args: list[str], package: str, env: dict[str, str] | None = None) -> str:
    """Run node in the package's folder (once ``package`` and the build are there); its
    stdout, after it exited 0."""
    node = require_client_build(package)
    done = subprocess.run(
        [node, *args],
        cwd=CLIENT_JS,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=NODE_TIMEOUT_S,
        check=False,
    )
    output = done.stdout[-20000:]
    assert done.returncode == 0, f"node {' '.join(args)} failed:\n{output}\n{done.stderr[-5000:]}"
    return done.stdout


def _node_test(paths: list[Path], env: dict[str, str] | None = None) -> None:
    print(_node(["--test", *map(str, paths)], "socket.io-client", env)[-20000:])


def test_a_fresh_strict_build_compiles_and_is_the_build_the_tests_read(tmp_path: Path) -> None:
    _node([str(TSC), "-p", "tsconfig.json", "--strict", "--outDir", str(tmp_path)], "typescript")
    fresh, built = _files(tmp_path), _files(CLIENT_BUILD)
    hint = "dist/ is not the build of src/: npm run build --prefix packages/client-js"
    assert sorted(built) == sorted(fresh), f"{hint} (files differ)"
    stale = [name for name, path in fresh.items() if not filecmp.cmp(path, built[name], False)]
    assert stale == [], f"{hint} ({stale})"


def test_the_published_types_compile_an_app_in_strict_mode() -> None:
    """``test/types/usage.ts`` (the README's calls, events narrowed by ``type``) type-checks
    against ``dist/*.d.ts`` with ``--strict``."""
    options = ["--noEmit", "--strict", "--target", "ES2022", "--lib", "ES2022,DOM"]
    options += ["--module", "NodeNext", "--moduleResolution", "NodeNext", "--skipLibCheck"]
    _node([str(TSC), *options, "test/types/usage.ts"], "typescript")


def test_the_unit_and_conformance_tests_pass() -> None:
    """The conformance test compares the fields the Python fold declares each event type
    determines: one declaration for both folds."""
    folded = {
        "always": list(ALWAYS),
        "by_type": {str(t): list(f) for t, f in FOLDED_FIELDS.items()},
    }
    _node_test([CLIENT_JS / "test" / "unit"], {"JOBSPINE_FOLDED_FIELDS": json.dumps(folded)})


def test_the_resync_bench_runs_at_a_tiny_size() -> None:
    """``packages/client-js/bench/resync.mjs`` cannot rot: it runs and prints its summary
    (its timings are printed, never judged here)."""
    args = ["bench/resync.mjs", "--jobs", "3", "--rounds", "2", "--missed", "1"]
    printed = _node(args, "socket.io-client", SERVER_ENV)
    assert "connect -> live (one job:sync, a job:subscribe per watch): median" in printed
    assert "restore -> live (plus the backoff wait): median" in printed


@pytest.mark.parametrize("script", LIVE_TESTS, ids=[path.name for path in LIVE_TESTS])
def test_the_live_tests_pass(script: Path, postgres_dsn: str) -> None:
    _node_test([script], {**SERVER_ENV, "JOBSPINE_TEST_DATABASE_URL": postgres_dsn})
