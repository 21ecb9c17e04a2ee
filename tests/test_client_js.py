"""The TypeScript client ``@jobspine/client`` (``packages/client-js``).

- Its committed build (``dist/``, served to browsers without a build step) is exactly what
  ``tsc`` makes of ``src/`` now.
- Its Node tests pass (``node --test``): units and the conformance fold without a server;
  live tests against real ``python -m server`` processes that they start, kill and restart
  themselves (``test/support/live.mjs``), with a fresh Postgres database each.

Needs node and ``npm install --prefix packages/client-js`` (``scripts/test`` runs both);
without them these tests skip, except under ``CI=true``, where they fail.
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
from tests.support.node import ROOT, require_node

CLIENT_DIR = ROOT / "packages" / "client-js"
DIST = CLIENT_DIR / "dist"
LIVE_TESTS = sorted((CLIENT_DIR / "test" / "live").glob("*.test.mjs"))
#: Bounds one ``node --test`` run; a healthy one takes seconds.
NODE_TIMEOUT_S = 240


def _files(root: Path) -> dict[str, Path]:
    return {str(path.relative_to(root)): path for path in sorted(root.rglob("*")) if path.is_file()}


def _node_test(paths: list[Path], env: dict[str, str] | None = None) -> None:
    node = require_node(CLIENT_DIR, "socket.io-client")
    done = subprocess.run(
        [node, "--test", *map(str, paths)],
        cwd=CLIENT_DIR,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=NODE_TIMEOUT_S,
        check=False,
    )
    output = done.stdout[-20000:]
    print(output)
    assert done.returncode == 0, f"node --test failed:\n{output}\n{done.stderr[-5000:]}"


def test_the_committed_dist_is_the_build_of_src(tmp_path: Path) -> None:
    node = require_node(CLIENT_DIR, "typescript")
    tsc = CLIENT_DIR / "node_modules" / "typescript" / "bin" / "tsc"
    config = CLIENT_DIR / "tsconfig.json"
    built = subprocess.run(
        [node, str(tsc), "-p", str(config), "--outDir", str(tmp_path)],
        cwd=CLIENT_DIR,
        capture_output=True,
        text=True,
        timeout=NODE_TIMEOUT_S,
        check=False,
    )
    assert built.returncode == 0, f"tsc failed:\n{built.stdout}\n{built.stderr}"
    fresh, committed = _files(tmp_path), _files(DIST)
    assert sorted(committed) == sorted(fresh), "dist/ lacks or has extra files: npm run build"
    stale = [name for name, path in fresh.items() if not filecmp.cmp(path, committed[name], False)]
    assert stale == [], f"dist/ differs from a build of src/ in {stale}: npm run build"


def test_the_published_types_compile_an_app_in_strict_mode() -> None:
    """``test/types/usage.ts`` (the README's calls, events narrowed by ``type``) type-checks
    against ``dist/*.d.ts`` with ``--strict``."""
    node = require_node(CLIENT_DIR, "typescript")
    tsc = CLIENT_DIR / "node_modules" / "typescript" / "bin" / "tsc"
    usage = CLIENT_DIR / "test" / "types" / "usage.ts"
    options = ["--noEmit", "--strict", "--target", "ES2022", "--lib", "ES2022,DOM"]
    options += ["--module", "NodeNext", "--moduleResolution", "NodeNext", "--skipLibCheck"]
    done = subprocess.run(
        [node, str(tsc), *options, str(usage)],
        cwd=CLIENT_DIR,
        capture_output=True,
        text=True,
        timeout=NODE_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, f"tsc --strict on test/types/usage.ts:\n{done.stdout}"


def test_the_unit_and_conformance_tests_pass() -> None:
    """The conformance test compares the fields the Python fold declares each event type
    determines: one declaration for both folds."""
    folded = {
        "always": list(ALWAYS),
        "by_type": {str(t): list(f) for t, f in FOLDED_FIELDS.items()},
    }
    _node_test([CLIENT_DIR / "test" / "unit"], {"JOBSPINE_FOLDED_FIELDS": json.dumps(folded)})


def test_the_resync_bench_runs_at_a_tiny_size() -> None:
    """``packages/client-js/bench/resync.mjs`` cannot rot: it runs and prints its summary
    (its timings are printed, never judged here)."""
    node = require_node(CLIENT_DIR, "socket.io-client")
    bench = CLIENT_DIR / "bench" / "resync.mjs"
    done = subprocess.run(
        [node, str(bench), "--jobs", "3", "--rounds", "2", "--missed", "1"],
        cwd=CLIENT_DIR,
        env={**os.environ, "JOBSPINE_ROOT": str(ROOT), "JOBSPINE_PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=NODE_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    assert "connect -> live (one job:sync, a job:subscribe per watch): median" in done.stdout
    assert "restore -> live (plus the backoff wait): median" in done.stdout


@pytest.mark.parametrize("script", LIVE_TESTS, ids=[path.name for path in LIVE_TESTS])
def test_the_live_tests_pass(script: Path, postgres_dsn: str) -> None:
    _node_test(
        [script],
        {
            "JOBSPINE_ROOT": str(ROOT),
            "JOBSPINE_PYTHON": sys.executable,
            "JOBSPINE_TEST_DATABASE_URL": postgres_dsn,
        },
    )
