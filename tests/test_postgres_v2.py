"""Schema v2 on Postgres: a v1 database upgrades in place, the trigger knows the retry row,
and the v2 scans (claim order, timeouts, retention) run on their partial indexes."""

from __future__ import annotations

import uuid
from typing import Any

from jobspine_shared.models import RetryPolicy
from jobspine_shared.states import JobState
from server.store.postgres.migrator import apply_migrations, load_migrations
from server.store.postgres.queries import CLAIM_TYPES_SQL, DELETE_FINISHED_SQL, FIND_TIMED_OUT_SQL
from tests.support.postgres import connected, open_postgres_store
from tests.support.query_plans import fill_jobs, plan_of
from tests.support.server import TEST_BACKLOG

S = JobState


async def _v1_job(conn: Any, state: str, **extra: Any) -> uuid.UUID:
    """A job row as schema v1 wrote it: only v1 columns."""
    job_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO jobs (id, user_id, type, input, created_at, updated_at, epoch, seq)"
        " VALUES ($1, 'u1', 'research', '{\"q\": 1}', now(), now(), 'e1', 1)",
        job_id,
    )
    if state == "running":
        await conn.execute(
            "UPDATE jobs SET state = 'running', lease = 'L1', started_at = now(),"
            " last_heartbeat_at = now(), attempt = 1, seq = 2 WHERE id = $1",
            job_id,
        )
    if state == "completed":
        await conn.execute(
            "UPDATE jobs SET state = 'running', lease = 'L1', started_at = now(),"
            " last_heartbeat_at = now(), attempt = 1 WHERE id = $1",
            job_id,
        )
        await conn.execute(
            "UPDATE jobs SET state = 'completed', lease = NULL, completed_at = now(),"
            " result = '{\"ok\": true}', progress = 100, seq = 3 WHERE id = $1",
            job_id,
        )
    return job_id


async def test_a_v1_database_upgrades_in_place(empty_postgres_dsn: str) -> None:
    migrations = load_migrations()
    assert [m.version for m in migrations][:2] == [1, 2]
    async with connected(empty_postgres_dsn) as conn:
        await apply_migrations(conn, migrations[:1])  # the database as v1 left it
        queued = await _v1_job(conn, "created")
        running = await _v1_job(conn, "running")
        done = await _v1_job(conn, "completed")
        applied = await apply_migrations(conn)
        assert [m.version for m in applied] == [m.version for m in migrations[1:]]
        versions = await conn.fetch("SELECT DISTINCT schema_version FROM jobs")
        assert [r[0] for r in versions] == [2]
        # The new row of the state machine is the trigger's too.
        await conn.execute(
            "UPDATE jobs SET state = 'created', lease = NULL, retries = 1 WHERE id = $1", running
        )
        await conn.execute(
            "UPDATE jobs SET state = 'running', lease = 'L2', started_at = now(),"
            " last_heartbeat_at = now() WHERE id = $1",
            running,
        )

    store = await open_postgres_store(empty_postgres_dsn, backlog_size=TEST_BACKLOG)
    try:
        for job_id, state in ((queued, S.CREATED), (running, S.RUNNING), (done, S.COMPLETED)):
            job = await store.get(str(job_id))
            assert job is not None
            record = job.record
            assert record.state is state
            assert record.schema_version == 2
            assert (record.priority, record.run_at, record.tags, record.parent_id) == (
                0,
                None,
                (),
                None,
            )
            assert record.retry == RetryPolicy()
            assert (record.timeout_s, record.idempotency_key, record.correlation_id) == (
                None,
                None,
                None,
            )
            assert record.input == {"q": 1}
        # A migrated queued job is claimable in the v2 order.
        claimed = await store.claim(types=["research"], worker_id="w", lease="L3")
        assert claimed is not None
        assert claimed.job.id == str(queued)
    finally:
        await store.close()


async def test_v2_scans_use_their_partial_indexes(postgres_dsn: str) -> None:
    async with connected(postgres_dsn) as conn:
        await fill_jobs(conn, 20000)
        await conn.execute("ANALYZE jobs")
        claim = await plan_of(conn, CLAIM_TYPES_SQL, [], 0, ["research"])
        timed_out = await plan_of(conn, FIND_TIMED_OUT_SQL, 100)
        retention = await plan_of(conn, DELETE_FINISHED_SQL, 60.0, 100)
    # An ordered scan of a claim index stopping at the first row: no sort of the queue.
    assert "jobs_claim_type_idx" in claim or "jobs_claim_any_idx" in claim, claim
    assert "Sort" not in claim, claim
    assert "jobs_running_idx" in timed_out or "jobs_running_user_idx" in timed_out, timed_out
    assert "jobs_finished_idx" in retention, retention
