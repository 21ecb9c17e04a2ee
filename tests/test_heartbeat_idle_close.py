"""A heartbeat batch closes early once no caller joined for ``idle_s``: callers that come
together share one statement without waiting out the whole window."""

from __future__ import annotations

import pytest

from server.store.postgres.heartbeat_batch import IDLE_FRACTION, HeartbeatBatcher
from server.store.postgres.write_batch import BatchWindow
from tests.support.batching import heartbeat_all, pooled_heartbeat_batcher
from tests.support.heartbeat_rows import beaten_since, running_jobs
from tests.support.postgres import connected

#: Far longer than any test may take: a batch that waited it out would fail the test.
WINDOW_S = 3600.0
#: Bound on a wait that a healthy run finishes in milliseconds.
WITHIN_S = 30.0

pytestmark = pytest.mark.postgres


async def test_a_lone_heartbeat_is_written_once_no_one_joins(postgres_dsn: str) -> None:
    async with connected(postgres_dsn) as conn:
        [(job_id, lease)] = await running_jobs(conn, 1)
        async with pooled_heartbeat_batcher(
            postgres_dsn, BatchWindow(max_delay_s=WINDOW_S), idle_s=0.01
        ) as batcher:
            answers = await heartbeat_all(batcher, [(job_id, lease)], WITHIN_S)
        assert answers == [False]
        assert batcher.flushes == 1
        assert await beaten_since(conn, 1) == 1


async def test_callers_that_come_together_share_one_statement(postgres_dsn: str) -> None:
    async with connected(postgres_dsn) as conn:
        jobs = await running_jobs(conn, 20)
        async with pooled_heartbeat_batcher(
            postgres_dsn, BatchWindow(max_delay_s=WINDOW_S), idle_s=0.05
        ) as batcher:
            answers = await heartbeat_all(batcher, jobs, WITHIN_S)
        assert answers == [False] * 20
        assert batcher.flushes == 1
        assert await beaten_since(conn, 1) == 20


def test_the_idle_gap_defaults_to_a_fraction_of_the_window() -> None:
    async def no_connection() -> None:
        raise AssertionError("not used")

    batcher = HeartbeatBatcher(no_connection, BatchWindow(max_delay_s=0.002))  # type: ignore[arg-type]
    assert batcher.idle_s == pytest.approx(0.002 / IDLE_FRACTION)
    with pytest.raises(ValueError, match="idle_s"):
        HeartbeatBatcher(no_connection, BatchWindow(max_delay_s=0.002), idle_s=0)  # type: ignore[arg-type]
