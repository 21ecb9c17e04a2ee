"""What only the Postgres store has: its migrator, the schema's own guards, HOT heartbeats,
its indexes and several instances sharing one database; its outages are
``test_postgres_outages.py``'s.

The store's behaviour as such is the contract suite's (``test_store_contract.py``), which
runs against both stores.
"""

from __future__ import annotations

import asyncio
import uuid
from contextlib import AbstractAsyncContextManager
from typing import Any

import asyncpg
import pytest

from jobspine_shared.states import TRANSITIONS, JobState
from server.commands.worker import parse_claim, parse_complete, parse_progress
from server.errors import InvalidTransition, LeaseLost
from server.service import JobRepository, RepositorySettings
from server.store.postgres import PostgresJobStore
from server.store.postgres.migrator import (
    MIGRATION_LOCK_KEY,
    apply_migrations,
    load_migrations,
    migrate,
)
from server.store.postgres.queries import FIND_STALE_SQL, HEARTBEAT_SQL
from tests.support.hot_updates import update_counts, without_autovacuum
from tests.support.jobs import ALICE, WORKER, claim, create, wait_until
from tests.support.postgres import connected, opened_postgres_store
from tests.support.query_plans import fill_jobs, plan_of

BACKLOG = 5
#: Every progress report appends its event: reports are how these tests make events.
EVERY_PROGRESS_EVENT = RepositorySettings(progress_events_per_s=0)


def opened_store(dsn: str, **options: Any) -> AbstractAsyncContextManager[PostgresJobStore]:
    return opened_postgres_store(dsn, backlog_size=BACKLOG, **options)


async def insert_job(conn: asyncpg.Connection[Any], *, running: bool = False) -> uuid.UUID:
    """A job written in raw SQL, so that a test's table statistics are its own."""
    job_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO jobs (id, user_id, type, input, created_at, updated_at, epoch, seq)"
        " VALUES ($1, 'alice', 'research', $2::jsonb, now(), now(), 'e1', 1)",
        job_id,
        '{"query": "what is HOT?", "depth": 3}',
    )
    if running:
        await conn.execute(
            "UPDATE jobs SET state = 'running', lease = 'L1', started_at = now(),"
            " last_heartbeat_at = now(), attempt = 1 WHERE id = $1",
            job_id,
        )
    return job_id


# -- migrator --------------------------------------------------------------------------------


async def migration_rows(dsn: str) -> list[tuple[int, str]]:
    async with connected(dsn) as conn:
        rows = await conn.fetch("SELECT version, name FROM schema_migrations ORDER BY version")
    return [(r["version"], r["name"]) for r in rows]


def shipped() -> list[tuple[int, str]]:
    return [(m.version, m.name) for m in load_migrations()]


async def test_migrator_builds_an_empty_database_once(empty_postgres_dsn: str) -> None:
    first = await migrate(empty_postgres_dsn)
    second = await migrate(empty_postgres_dsn)

    assert [(m.version, m.name) for m in first] == shipped()
    assert second == []
    assert await migration_rows(empty_postgres_dsn) == shipped()


async def test_concurrent_migrators_queue_on_the_lock_and_both_succeed(
    empty_postgres_dsn: str,
) -> None:
    async with connected(empty_postgres_dsn) as blocker:
        # Hold the migrators' lock so that both are provably waiting at the same time.
        await blocker.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
        runs = [asyncio.create_task(migrate(empty_postgres_dsn)) for _ in range(2)]

        async def both_waiting() -> bool:
            waiting = await blocker.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            )
            return bool(waiting == 2)

        await wait_until(both_waiting)
        await blocker.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
        results = await asyncio.gather(*runs)

    applied = sorted((m.version, m.name) for result in results for m in result)
    assert applied == shipped()  # each migration applied by exactly one of them
    assert await migration_rows(empty_postgres_dsn) == shipped()


async def test_a_cloned_test_database_is_fully_migrated(postgres_dsn: str) -> None:
    assert await migration_rows(postgres_dsn) == shipped()
    assert await migrate(postgres_dsn) == []


# -- the schema guards the contract by itself ------------------------------------------------


async def test_transition_table_is_the_contracts(postgres_dsn: str) -> None:
    async with connected(postgres_dsn) as conn:
        rows = await conn.fetch("SELECT from_state::text, to_state::text FROM job_transitions")
    assert {(JobState(r[0]), JobState(r[1])) for r in rows} == set(TRANSITIONS)


async def test_trigger_refuses_an_illegal_transition_in_raw_sql(postgres_dsn: str) -> None:
    async with connected(postgres_dsn) as conn:
        job_id = await insert_job(conn)
        with pytest.raises(asyncpg.CheckViolationError, match="created -> completed"):
            await conn.execute(
                "UPDATE jobs SET state = 'completed', completed_at = now() WHERE state = 'created'"
            )
        assert await conn.fetchval("SELECT state::text FROM jobs WHERE id = $1", job_id) == (
            "created"
        )
        # A legal one passes the same trigger.
        await conn.execute("UPDATE jobs SET state = 'paused' WHERE id = $1", job_id)


async def test_only_updates_that_assign_the_state_fire_the_transition_trigger(
    empty_postgres_dsn: str,
) -> None:
    """Migration 0006 on a database at 0005: the trigger is ``BEFORE UPDATE OF state`` (a
    heartbeat's UPDATE fires no row trigger), and still refuses an illegal transition."""
    async with connected(empty_postgres_dsn) as conn:
        await apply_migrations(conn, [m for m in load_migrations() if m.version < 6])
        job_id = await insert_job(conn)
        applied = await apply_migrations(conn)
        triggers = await conn.fetch(
            "SELECT pg_get_triggerdef(oid) AS definition FROM pg_trigger"
            " WHERE tgrelid = 'jobs'::regclass AND NOT tgisinternal"
        )
        updates = [t["definition"] for t in triggers if " UPDATE " in t["definition"]]
        await conn.execute("UPDATE jobs SET last_heartbeat_at = now() WHERE id = $1", job_id)
        with pytest.raises(asyncpg.CheckViolationError, match="created -> completed"):
            await conn.execute(
                "UPDATE jobs SET state = 'completed', completed_at = now() WHERE id = $1", job_id
            )
    assert [m.version for m in applied] == [6]
    assert len(updates) == 1
    assert "BEFORE UPDATE OF state ON public.jobs" in updates[0]


async def test_a_job_cannot_be_inserted_past_created(postgres_dsn: str) -> None:
    async with connected(postgres_dsn) as conn, conn.transaction():
        with pytest.raises(asyncpg.CheckViolationError, match="must be created"):
            await conn.execute(
                "INSERT INTO jobs (id, user_id, type, state, created_at, updated_at, epoch,"
                " seq, completed_at) VALUES (gen_random_uuid(), 'u', 't', 'completed', now(),"
                " now(), 'e', 1, now())"
            )


@pytest.mark.parametrize(
    ("assignment", "constraint"),
    [
        ("progress = 150", "jobs_progress_range"),
        ("progress = -1", "jobs_progress_range"),
        ("progress = 'NaN'", "jobs_progress_range"),
        ("step = repeat('x', 257)", "jobs_step_length"),
        ("type = 'Not A Type'", "jobs_type_format"),
        ("input = '[]'", "jobs_input_object"),
        ("lease = 'L'", "jobs_lease_iff_running"),
        ("pause_requested = true", "jobs_pause_request_running"),
        ("has_checkpoint = true", "jobs_checkpoint_flag"),
        ("checkpoint_size = 10", "jobs_checkpoint_meta"),
        ('error = \'{"code": "x"}\'', "jobs_error_shape"),
        ("priority = 101", "jobs_priority_range"),
        ("timeout_s = 0", "jobs_timeout_positive"),
        ("retries = -1", "jobs_retries_count"),
        ("retry = '{\"max_attempts\": 1}'", "jobs_retry_shape"),
        ("schema_version = 0", "jobs_schema_version"),
        ("tags = array_fill('t'::text, ARRAY[17])", "jobs_tags_count"),
    ],
)
async def test_check_constraints_refuse_bad_values(
    postgres_dsn: str, assignment: str, constraint: str
) -> None:
    async with connected(postgres_dsn) as conn:
        job_id = await insert_job(conn)
        with pytest.raises(asyncpg.CheckViolationError) as refused:
            await conn.execute(f"UPDATE jobs SET {assignment} WHERE id = $1", job_id)
    assert refused.value.constraint_name == constraint


async def test_an_insert_is_refused_by_a_column_rule(postgres_dsn: str) -> None:
    async with connected(postgres_dsn) as conn:
        with pytest.raises(asyncpg.CheckViolationError) as refused:
            await conn.execute(
                "INSERT INTO jobs (id, user_id, type, created_at, updated_at, epoch, seq)"
                " VALUES (gen_random_uuid(), 'u', 'Not A Type', now(), now(), 'e', 1)"
            )
    assert refused.value.constraint_name == "jobs_type_format"


async def test_the_table_checks_only_rules_that_tie_columns_together(postgres_dsn: str) -> None:
    # Postgres checks every CHECK constraint of a table on every row an UPDATE writes,
    # whatever it sets (a heartbeat sets last_heartbeat_at alone), and a domain's only where
    # its column is assigned: the rules of one column are domains (migration 0005), but
    # tags' (a domain over an array would change how its index's operators resolve).
    async with connected(postgres_dsn) as conn:
        rows = await conn.fetch(
            "SELECT conname, cardinality(conkey) AS columns FROM pg_constraint"
            " WHERE conrelid = 'jobs'::regclass AND contype = 'c'"
        )
    assert len(rows) > 5
    assert [r["conname"] for r in rows if r["columns"] == 1] == ["jobs_tags_count"]


async def test_the_column_domains_keep_the_rows_of_an_older_schema(
    empty_postgres_dsn: str,
) -> None:
    before_domains = [m for m in load_migrations() if m.version < 5]
    async with connected(empty_postgres_dsn) as conn:
        await apply_migrations(conn, before_domains)
        job_id = await insert_job(conn, running=True)
        await conn.execute(
            "UPDATE jobs SET priority = 7, timeout_s = 2.5, step = 's', progress = 40"
            " WHERE id = $1",
            job_id,
        )
        old = await conn.fetchrow("SELECT * FROM jobs WHERE id = $1", job_id)
        applied = await apply_migrations(conn)
        new = await conn.fetchrow("SELECT * FROM jobs WHERE id = $1", job_id)
        with pytest.raises(asyncpg.CheckViolationError) as refused:
            await conn.execute("UPDATE jobs SET priority = 101 WHERE id = $1", job_id)

    assert [m.version for m in applied] == [m.version for m in load_migrations()][4:]
    assert old is not None
    assert new is not None
    assert dict(new) == dict(old)
    assert refused.value.constraint_name == "jobs_priority_range"


# -- heartbeats and indexes ------------------------------------------------------------------


async def test_heartbeats_are_hot_updates(postgres_dsn: str) -> None:
    beats = 200
    async with connected(postgres_dsn) as conn:
        # Everything on this one connection: its statistics are flushed on demand.
        job_id = await insert_job(conn, running=True)
        await without_autovacuum(conn)
        updates_before, hot_before = await update_counts(conn)
        for _ in range(beats):
            assert await conn.fetchval(HEARTBEAT_SQL, job_id, "L1") is False
        updates_after, hot_after = await update_counts(conn)

    assert updates_after - updates_before == beats
    assert hot_after - hot_before >= 0.9 * beats


async def test_no_index_holds_the_heartbeat_column(postgres_dsn: str) -> None:
    async with connected(postgres_dsn) as conn:
        definitions = await conn.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'jobs'"
        )
    assert definitions
    assert [r["indexname"] for r in definitions if "last_heartbeat_at" in r["indexdef"]] == []


async def test_stale_scan_uses_the_partial_running_index(postgres_dsn: str) -> None:
    # One transaction: now() is its start, the same for the heartbeats and the scan however
    # slow the machine is between them.
    async with connected(postgres_dsn) as conn, conn.transaction():
        await fill_jobs(conn, 5000)
        await conn.execute(
            "UPDATE jobs SET state = 'running', lease = 'L', started_at = now(),"
            " last_heartbeat_at = now() - ((g.n - 0.5) * interval '1 second')"
            " FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM jobs LIMIT 50) AS g"
            " WHERE jobs.id = g.id"
        )
        await conn.execute("ANALYZE jobs")
        plan = await plan_of(conn, FIND_STALE_SQL, 30.0, 100)
        stale = await conn.fetch(FIND_STALE_SQL, 30.0, 100)

    assert "jobs_running_idx" in plan or "jobs_running_user_idx" in plan, (
        plan
    )  # partial: running only
    assert len(stale) == 20  # heartbeats 0.5 .. 49.5 s old; stale after 30 s: 30.5 .. 49.5


async def test_the_backlog_is_trimmed_in_the_table(postgres_dsn: str) -> None:
    async with opened_store(postgres_dsn) as store:
        repo = JobRepository(store, EVERY_PROGRESS_EVENT)
        job = await create(repo)
        lease = await claim(repo, job.id)
        for step in range(12):
            await repo.update_progress(
                parse_progress({"job_id": job.id, "lease": lease, "progress": step})
            )
    async with connected(postgres_dsn) as conn:
        seqs = await conn.fetch("SELECT seq FROM job_events ORDER BY seq")
    assert [r["seq"] for r in seqs] == list(range(14 - BACKLOG + 1, 15))


# -- several instances on one database -------------------------------------------------------


async def test_two_instances_append_consecutive_seqs(postgres_dsn: str) -> None:
    """Two stores (two pools, as two web instances) racing on one job: the row lock of the
    conditional UPDATE orders them, so seqs stay gapless and unique."""
    async with opened_store(postgres_dsn) as one, opened_store(postgres_dsn) as two:
        repos = [JobRepository(one, EVERY_PROGRESS_EVENT), JobRepository(two, EVERY_PROGRESS_EVENT)]
        job = await create(repos[0])
        lease = await claim(repos[0], job.id)
        await asyncio.gather(
            *(
                repos[i % 2].update_progress(
                    parse_progress({"job_id": job.id, "lease": lease, "progress": 10})
                )
                for i in range(40)
            )
        )
        read = await one.read_stream(job.id, 0)

    assert read is not None
    assert read.job.record.seq == 2 + 40
    assert [e.seq for e in read.events] == list(range(42 - BACKLOG + 1, 43))


async def test_two_instances_claim_each_job_once(postgres_dsn: str) -> None:
    async with opened_store(postgres_dsn) as one, opened_store(postgres_dsn) as two:
        repos = [JobRepository(one), JobRepository(two)]
        jobs = [await create(repos[0]) for _ in range(10)]
        claims = await asyncio.gather(
            *(repos[i % 2].claim(parse_claim({}, default_worker_id=WORKER.id)) for i in range(16))
        )

    claimed = [c.job.id for c in claims if c is not None]
    assert sorted(claimed) == sorted(j.id for j in jobs)


async def test_two_instances_cancel_and_complete_exactly_one_wins(postgres_dsn: str) -> None:
    async with opened_store(postgres_dsn) as one, opened_store(postgres_dsn) as two:
        job = await create(JobRepository(one))
        lease = await claim(JobRepository(one), job.id)
        outcomes = await asyncio.gather(
            JobRepository(one).cancel(ALICE, job.id),
            JobRepository(two).complete(
                parse_complete({"job_id": job.id, "lease": lease, "result": {"done": True}})
            ),
            return_exceptions=True,
        )
        final = await one.get(job.id)

    errors = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(errors) == 1
    assert isinstance(errors[0], LeaseLost | InvalidTransition)
    assert final is not None
    assert final.record.state in (JobState.CANCELLED, JobState.COMPLETED)
    assert final.record.seq == 3  # created, started, and the winner's event
