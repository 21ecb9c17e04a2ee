"""The benchmark suite at tiny sizes (``scripts/bench --smoke``), so that it cannot rot.

It runs the real command against real servers and PostgreSQL and checks that every measure
a-e printed its JSON lines with numbers, and wrote the same results to ``--out``. Nothing
here judges a timing: the goals' verdicts are printed, never asserted.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from scripts.benchsuite.command import run_bench

#: Every name each measure prints (memory and Postgres where both apply, and the raw ones).
EXPECTED = {
    "a": {("heartbeat_rps", "raw"), ("heartbeat_rps", "memory"), ("heartbeat_rps", "postgres")},
    "b": {
        ("progress_fanout_rps", "raw"),
        ("progress_fanout_rps", "memory"),
        ("progress_fanout_rps", "postgres"),
        ("progress_latency_p99", "memory"),
        ("progress_latency_p99", "postgres"),
    },
    "c": {
        ("stale_scan_ms_spread", "postgres"),
        ("stale_scan_ms_recent", "postgres"),
        ("heartbeat_hot_ratio", "postgres"),
    },
    "d": {("replay_p99_ms", "raw"), ("replay_p99_ms", "memory"), ("replay_p99_ms", "postgres")},
    "e": {("idle_kb_per_client_30", "memory"), ("idle_kb_per_client_60", "memory")},
}
SMOKE_WITHIN_S = 240


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@pytest.mark.postgres
@pytest.mark.slow
def test_bench_smoke_prints_every_measure(postgres_template: str, tmp_path: Path) -> None:
    # postgres_template: skips (or fails under CI=true) when PostgreSQL is unreachable.
    out = tmp_path / "results.json"
    run = run_bench(["--smoke", "--out", str(out)], within_s=SMOKE_WITHIN_S)
    assert run.returncode == 0, run.tail()
    lines = run.lines()

    for measure, names in EXPECTED.items():
        printed = {(r["name"], r["store"]) for r in lines if r["measure"] == measure}
        assert printed == names, f"measure {measure}"
    for line in lines:
        assert _number(line["value"]), line
        assert line["raw"] is None or _number(line["raw"]), line
        assert line["bench"] == "suite"
        assert line["smoke"] is True
        assert line["machine"]["cpus"] >= 1
        assert line["date"]
    for line in lines:
        if line["name"] == "progress_latency_p99":  # each side's CPU, to tell who queued
            sides = ("server_cpu", "client_cpu", "raw_server_cpu", "raw_client_cpu")
            assert all(_number(line["extra"][key]) for key in sides), line
    goals = [line for line in lines if line["goal"] is not None]
    assert goals, "no result names its goal"
    assert all(isinstance(line["met"], bool) for line in goals)
    assert "measure  name" in run.stdout  # the table after the JSON lines

    written = json.loads(out.read_text())
    assert written["results"] == lines
