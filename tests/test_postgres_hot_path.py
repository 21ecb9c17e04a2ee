"""The Postgres hot path's shortcuts keep every guarantee (docs/performance.md, "The
Postgres path, cut"): events go with their job although no foreign key ties them; a
connection comes back from the pool without its reset query and still without any state of
its last user; heartbeats commit without waiting for the WAL flush, nothing else does."""

from __future__ import annotations

import asyncio

import pytest

from jobspine_shared.states import JobState
from server.service import JobRepository, RepositorySettings
from server.store.postgres import PostgresJobStore
from tests.support.jobs import ALICE, drive
from tests.support.postgres import ONE_CONNECTION, connected, opened_postgres_store

pytestmark = pytest.mark.postgres

BACKLOG = 50


async def _events_of(dsn: str, job_id: str) -> int:
    async with connected(dsn) as conn:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM job_events WHERE job_id = $1::uuid", job_id
        )
    return count


async def test_deleting_jobs_deletes_their_events(postgres_dsn: str) -> None:
    async with opened_postgres_store(postgres_dsn, backlog_size=BACKLOG) as store:
        repo = JobRepository(store, RepositorySettings(progress_events_per_s=0))
        one = await drive(repo, JobState.COMPLETED)
        two = await drive(repo, JobState.CANCELLED)
        kept = await drive(repo, JobState.FAILED)
        assert await _events_of(postgres_dsn, one.job.id) > 1
        await store.delete(one.job.id)
        assert await _events_of(postgres_dsn, one.job.id) == 0
        # Retention deletes a batch in one statement: every job's events go with it.
        async with connected(postgres_dsn) as conn:
            await conn.execute(
                "UPDATE jobs SET cancelled_at = now() - interval '1 day' WHERE id = $1::uuid",
                two.job.id,
            )
        deleted = await store.delete_finished(3600.0, limit=10)
        assert [job.record.id for job in deleted] == [two.job.id]
        assert await _events_of(postgres_dsn, two.job.id) == 0
        assert await _events_of(postgres_dsn, kept.job.id) > 1


async def test_a_returned_connection_carries_no_state_of_its_last_user(
    postgres_dsn: str,
) -> None:
    """One connection, so each checkout gets the one the last caller gave back."""
    store = PostgresJobStore(postgres_dsn, backlog_size=BACKLOG, pool=ONE_CONNECTION)
    await store.open()
    pool = store._pool  # the connections themselves are what this test is about
    try:
        entered = asyncio.Event()

        async def abandoned() -> None:
            async with pool.transaction() as conn:
                await conn.execute("SELECT pg_advisory_xact_lock(4242)")
                entered.set()
                await asyncio.Event().wait()  # cancelled with its transaction open

        task = asyncio.create_task(abandoned())
        await entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        async with pool.connection() as conn:
            assert not conn.is_in_transaction()
            assert await conn.fetchval("SELECT pg_try_advisory_xact_lock(4242)")
            # A heartbeat's asynchronous commit is local to its own statement.
            assert await conn.fetchval("SHOW synchronous_commit") == "on"
    finally:
        await store.close()


async def test_heartbeats_alone_commit_asynchronously(postgres_dsn: str) -> None:
    """What each statement leaves ``synchronous_commit`` at for its own commit."""
    from server.store.postgres.heartbeat_batch import BATCH_HEARTBEAT_SQL
    from server.store.postgres.progress_batch import batch_progress_sql
    from server.store.postgres.queries import HEARTBEAT_SQL

    assert "synchronous_commit" in HEARTBEAT_SQL
    assert "synchronous_commit" in BATCH_HEARTBEAT_SQL
    assert "synchronous_commit" not in batch_progress_sql()
    assert "synchronous_commit" in batch_progress_sql(events=False)
    async with opened_postgres_store(postgres_dsn, backlog_size=BACKLOG) as store:
        repo = JobRepository(store, RepositorySettings(progress_events_per_s=0))
        running = await drive(repo, JobState.RUNNING, ALICE)
        assert running.lease is not None
        assert await store.heartbeat(running.job.id, running.lease) is False
        async with connected(postgres_dsn) as conn:
            probe = HEARTBEAT_SQL.replace("RETURNING pause_requested", "RETURNING 1")
            setting = await conn.fetchval(
                f"WITH c AS ({probe}) SELECT current_setting('synchronous_commit') FROM c",
                running.job.id,
                running.lease,
            )
            assert setting == "off"
            assert await conn.fetchval("SHOW synchronous_commit") == "on"


async def test_a_trailing_event_rides_with_the_next_change_under_its_lease(
    postgres_dsn: str,
) -> None:
    """Held reports' trailing event is the held report's event: carried by the next change
    under the reporting lease as its first event (no progress write of its own); when that
    change is refused, written on its own through the progress batch first, and the change
    refused as it would have been."""
    from server.commands.worker import parse_checkpoint, parse_complete, parse_progress
    from server.errors import InvalidProgress
    from tests.support.jobs import running

    async with opened_postgres_store(postgres_dsn, backlog_size=BACKLOG) as store:
        repo = JobRepository(store, RepositorySettings(progress_events_per_s=0.5))
        try:
            job_id, lease = await running(repo)
            batcher = store.progress_batcher
            assert batcher is not None
            for value, step in ((10.0, "live"), (20.0, "held"), (30.0, "held too")):
                report = {"job_id": job_id, "lease": lease, "progress": value, "step": step}
                await repo.update_progress(parse_progress(report))
            flushes = batcher.flushes
            lower = {"job_id": job_id, "lease": lease, "data": {"n": 1}, "progress": 5.0}
            with pytest.raises(InvalidProgress):
                await repo.checkpoint(parse_checkpoint(lower))
            assert batcher.flushes == flushes + 1  # refused: the trailing event on its own
            report = {"job_id": job_id, "lease": lease, "progress": 40.0, "step": "held again"}
            await repo.update_progress(parse_progress(report))
            flushes = batcher.flushes
            await repo.complete(
                parse_complete({"job_id": job_id, "lease": lease, "result": {"ok": True}})
            )
            assert batcher.flushes == flushes  # carried by the complete itself
            read = await store.read_stream(job_id, 0)
            assert read is not None
            tail = [(str(e.type), e.data) for e in read.events][-4:]
            assert tail == [
                ("job:progress", {"progress": 10.0, "step": "live"}),
                ("job:progress", {"progress": 30.0, "step": "held too"}),
                ("job:progress", {"progress": 40.0, "step": "held again"}),
                ("job:completed", {"result": {"ok": True}}),
            ]
            assert [e.seq for e in read.events] == list(range(1, len(read.events) + 1))
        finally:
            await repo.close()
