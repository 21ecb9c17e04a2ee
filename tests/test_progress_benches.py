"""scripts/bench_progress_store.py, scripts/bench_heartbeat_store.py and
scripts/bench_backpressure.py at tiny sizes, so that they cannot rot. They run for real
(PostgreSQL, server processes); what is asserted is what they check or count, never a timing."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.postgres import BASE_DSN_ENV, base_dsn

ROOT = Path(__file__).resolve().parents[1]
WITHIN_S = 180


def run_tiny(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, BASE_DSN_ENV: base_dsn()}
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / script), "--tiny", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=WITHIN_S,
        check=False,
    )


def run(script: str, *args: str) -> list[dict[str, Any]]:
    done = run_tiny(script, *args)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return [line for line in lines if "machine" not in line]


@pytest.mark.postgres
@pytest.mark.slow
def test_the_progress_store_bench_runs_both_modes_and_finds_intact_streams(
    postgres_template: str,
) -> None:
    # postgres_template: skips (or fails under CI=true) when PostgreSQL is unreachable.
    results = run("bench_progress_store.py")
    assert [r["mode"] for r in results] == ["off", "on"]
    for result in results:
        assert result["reports"] > 0, result
        assert result["events"] == result["reports"], result
        assert result["errors"] == {}, result
        assert result["broken_streams"] == 0, result
    assert results[1]["flushes"] >= 1


@pytest.mark.postgres
@pytest.mark.slow
def test_the_heartbeat_store_bench_prints_a_row_of_numbers_per_mode(
    postgres_template: str,
) -> None:
    done = run_tiny("bench_heartbeat_store.py")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("batching"))
    rows = {line.split()[0]: line.split()[1:] for line in lines[start + 2 :]}
    assert list(rows) == ["off", "on"], done.stdout
    for mode, cells in rows.items():
        # beats/s, p50 ms, p99 ms, statements, beats/flush, commits, row updates, HOT ratio,
        # errors; beats/flush is "-" when batching is off (nothing flushes).
        assert len(cells) == 9, done.stdout
        numbers = [float(cell) for i, cell in enumerate(cells) if (mode, i) != ("off", 4)]
        assert all(math.isfinite(n) and n >= 0 for n in numbers), done.stdout
        assert cells[-1] == "0", done.stdout  # errors


@pytest.mark.slow
def test_the_backpressure_bench_delivers_everything_to_the_readers() -> None:
    results = run("bench_backpressure.py", "--runs", "baseline,laggard")
    assert [r["run"] for r in results] == ["baseline", "laggard"]
    for result in results:
        assert result["errors"] == 0, result
        assert result["events_delivered"] == result["events_expected"] > 0, result
        assert result["rss_max_mb"] > 0, result
