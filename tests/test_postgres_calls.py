"""Fewer statements per job on Postgres (docs/performance.md, "Postgres: fewer statements per
job"): the active-jobs count reads the active jobs only."""

from __future__ import annotations

import pytest

from server.store.postgres.queries import COUNT_ACTIVE
from tests.support.postgres import connected
from tests.support.query_plans import fill_jobs, plan_of

pytestmark = pytest.mark.postgres


async def test_the_active_count_reads_only_active_jobs(postgres_dsn: str) -> None:
    async with connected(postgres_dsn) as conn:
        await fill_jobs(conn, 20000)
        # Six in seven of them ended (all but priority 0): a long-lived user's history.
        await conn.execute(
            "UPDATE jobs SET state = 'cancelled', cancelled_at = now() WHERE priority <> 0"
        )
        await conn.execute("ANALYZE jobs")
        plan = await plan_of(conn, COUNT_ACTIVE, "u7")
        active = await conn.fetchval(COUNT_ACTIVE, "u7")
        every = await conn.fetchval(
            "SELECT count(*) FROM jobs WHERE user_id = 'u7' AND state <> 'cancelled'"
        )
    assert "jobs_active_user_idx" in plan, plan
    assert active == every > 0
