"""``scripts/bench progress-store``, ``heartbeat-store``, ``backpressure``, ``scaling`` and
``wakeup`` at tiny sizes, so that they cannot rot. They run for real (PostgreSQL, Redis,
server processes) through the one bench command and are read from their JSON lines; what is
asserted is what they check or count, never a timing."""

from __future__ import annotations

import math
from typing import Any

import pytest

from scripts.benchsuite.command import run_bench

WITHIN_S = 180


def bench(subcommand: str, *args: str) -> list[dict[str, Any]]:
    """The JSON lines ``scripts/bench SUBCOMMAND --tiny ARGS`` printed, checked as lines of
    that subcommand with the run's date and machine."""
    run = run_bench([subcommand, "--tiny", *args], within_s=WITHIN_S)
    assert run.returncode == 0, run.tail()
    lines = run.lines()
    assert lines, run.stdout
    for line in lines:
        assert line["bench"] == subcommand, line
        assert line["date"], line
        assert line["machine"]["cpus"] >= 1, line
    return lines


def both_modes(subcommand: str, calls: str) -> list[dict[str, Any]]:
    """The lines of a store bench: batching off (no flushes), then on (flushes), each with
    some ``calls`` that succeeded and no errors."""
    results = bench(subcommand)
    assert [r["mode"] for r in results] == ["off", "on"]
    for result in results:
        assert result[calls] > 0, result
        assert result["errors"] == {}, result
    off, on = results
    assert off["flushes"] is None, off
    assert on["flushes"] >= 1, on
    return results


def non_negative(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value >= 0


@pytest.mark.postgres
@pytest.mark.slow
def test_the_progress_store_bench_runs_both_modes_and_finds_intact_streams(
    postgres_template: str,
) -> None:
    # postgres_template: skips (or fails under CI=true) when PostgreSQL is unreachable.
    results = both_modes("progress-store", "reports")
    for result in results:
        assert result["events"] == result["reports"], result
        assert result["broken_streams"] == 0, result


@pytest.mark.postgres
@pytest.mark.slow
def test_the_heartbeat_store_bench_counts_every_heartbeat_of_each_mode(
    postgres_template: str,
) -> None:
    off, on = both_modes("heartbeat-store", "heartbeats")
    for result in (off, on):
        for key in ("heartbeats_per_s", "p50_ms", "p99_ms", "statements", "commits"):
            assert non_negative(result[key]), (key, result)
        # At most one row update per heartbeat (none is lost by a batch).
        assert 0 < result["row_updates"] <= result["heartbeats"], result
        assert 0 <= result["hot_ratio"] <= 1, result
    assert on["statements"] <= on["heartbeats"], on


@pytest.mark.slow
def test_the_backpressure_bench_delivers_everything_to_the_readers() -> None:
    results = bench("backpressure", "--runs", "baseline,laggard")
    assert [r["run"] for r in results] == ["baseline", "laggard"]
    for result in results:
        assert result["errors"] == 0, result
        assert result["events_delivered"] == result["events_expected"] > 0, result
        assert result["rss_max_mb"] > 0, result
        assert result["p50_ms"] <= result["p99_ms"], result


@pytest.mark.slow
def test_the_wakeup_bench_claims_every_job_it_creates() -> None:
    [result] = bench("wakeup")
    assert result["jobs"] == 3, result
    assert non_negative(result["median_ms"]), result
    assert result["median_ms"] <= result["max_ms"], result


@pytest.mark.postgres
@pytest.mark.slow
def test_the_scaling_bench_delivers_every_event_in_order(postgres_template: str) -> None:
    [result] = bench("scaling", "--scenarios", "single")
    assert result["scenario"] == "single", result
    assert result["deliveries"] == result["clients"] * result["events"] > 0, result
    assert result["lost"] == result["out_of_order"] == result["duplicates"] == 0, result
    assert non_negative(result["web_cpu_ms_per_event"]), result


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.slow
def test_the_scaling_bench_spreads_clients_over_instances(postgres_template: str) -> None:
    [result] = bench("scaling", "--scenarios", "spread-2")
    assert result["scenario"] == "spread-2", result
    assert result["web_processes"] == 2, result
    assert result["deliveries"] == result["clients"] * result["events"] > 0, result
    assert result["lost"] == result["out_of_order"] == result["duplicates"] == 0, result
    assert non_negative(result["web_cpu_ms_per_delivery"]), result


@pytest.mark.postgres
@pytest.mark.slow
def test_the_peer_bench_checks_every_job_seq_and_final_progress(postgres_template: str) -> None:
    # --smoke: jobspine only (saq would be installed from PyPI), both stores, both limits.
    lines = bench("peer")
    runs = [line for line in lines if line["round"] != "median"]
    assert {(r["target"], r["limit"]) for r in runs} == {
        ("jobspine-memory", 0),
        ("jobspine-memory", 10),
        ("jobspine-postgres", 0),
        ("jobspine-postgres", 10),
    }
    for run in runs:
        assert run["ok"] is True, run
        assert run["jobs_ended"] == run["params"]["jobs"], run
        assert run["jobs_broken_seq"] == run["jobs_final_progress_missed"] == 0, run
        assert run["progress_seen"] >= run["params"]["jobs"], run  # the final one of each
        assert non_negative(run["jobs_per_s"]), run
        assert run["latency_p50_ms"] <= run["latency_p99_ms"], run
    assert len(lines) - len(runs) == 4  # a median line per target and limit
