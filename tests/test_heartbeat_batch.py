"""Batched heartbeats on Postgres: many callers, few statements, each caller its own answer.

The store's heartbeat contract as such is the contract suite's (which runs with batching on,
the default); these tests cover what batching adds: answers sorted out per caller within one
statement, callers that give up, outages, deadlocks between batches and closing.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from jobspine_shared.states import JobState
from server.errors import LeaseLost, NotFound, Unavailable
from server.service import JobRepository
from server.store.postgres import PostgresJobStore
from tests.support.batching import (
    BACKLOG,
    heartbeat_all,
    heartbeat_batcher_of,
    opened,
    pooled_heartbeat_batcher,
)
from tests.support.heartbeat_rows import beaten_since, running_jobs
from tests.support.hot_updates import update_counts, without_autovacuum
from tests.support.jobs import ALICE, drive, wait_until
from tests.support.postgres import QUICK_FAILING_POOL, connected, open_postgres_store

UNREACHABLE_DSN = "postgresql://postgres@127.0.0.1:1/postgres"


async def lock_waiters(conn: asyncpg.Connection[Any]) -> int:
    """Backends of this database waiting for a lock (a flush stuck behind a row lock)."""
    count: int = await conn.fetchval(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    return count


@contextlib.asynccontextmanager
async def with_a_locker(
    dsn: str,
) -> AsyncIterator[tuple[asyncpg.Connection[Any], asyncpg.Connection[Any], PostgresJobStore]]:
    """A connection for setup and checks, one to hold row locks, and the store."""
    async with connected(dsn) as conn, connected(dsn) as locker, opened(dsn) as store:
        yield conn, locker, store


async def heartbeats_behind_a_row_lock(
    conn: asyncpg.Connection[Any],
    locker: asyncpg.Connection[Any],
    store: PostgresJobStore,
    jobs: list[tuple[str, str]],
    locked: str,
) -> list[asyncio.Task[bool]]:
    """Heartbeats of ``jobs``, returned once their flush waits for ``locker``'s lock on the
    row of ``locked`` (``locker`` must be in a transaction, which holds the lock)."""
    await locker.execute("SELECT 1 FROM jobs WHERE id = $1 FOR UPDATE", uuid.UUID(locked))
    calls = [asyncio.create_task(store.heartbeat(j, lease)) for j, lease in jobs]
    await wait_until(lambda: lock_waiters(conn))
    return calls


# -- many callers, few statements -----------------------------------------------------------


async def test_concurrent_heartbeats_share_few_statements(postgres_dsn: str) -> None:
    async with connected(postgres_dsn) as conn, opened(postgres_dsn) as store:
        jobs = await running_jobs(conn, 50)
        calls = [jobs[i % len(jobs)] for i in range(200)]  # each job four times

        answers = await asyncio.gather(*(store.heartbeat(j, lease) for j, lease in calls))

        assert answers == [False] * 200
        batcher = heartbeat_batcher_of(store)
        assert batcher.flushes < 200 / 4
        assert batcher.statements < 200 / 4
        assert await beaten_since(conn, 1) == 50  # written, not only answered
        # Callers are answered before the flush gives its connection back; then it ends.
        await wait_until(lambda: _true(batcher.busy == 0))


async def no_other_backends(conn: asyncpg.Connection[Any]) -> bool:
    """A backend reports its last table statistics when it exits."""
    others: int = await conn.fetchval(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    return others == 0


async def test_batched_heartbeats_are_hot_updates(postgres_dsn: str) -> None:
    """The batch statement sets only the unindexed ``last_heartbeat_at``, so its row updates
    are HOT: a few jobs heartbeat many times, their page vacuumed between batches.

    Between batches the test VACUUMs ``jobs`` rather than waiting for the next update to
    prune the page: opportunistic pruning goes by a cached, cluster-wide estimate of what
    other snapshots still need, so other databases' activity on the same server (other test
    runs) left it undone and the rows walked from page to page (165 of 200 HOT in three
    loaded runs). VACUUM computes this database's horizon itself; with room on the page, an
    update is HOT unless it changes an indexed column, which is what this test is about.
    (How updates find room under real load is what ``scripts/bench heartbeat-store``
    measures.)"""
    async with connected(postgres_dsn) as conn:
        jobs = await running_jobs(conn, 5)
        await without_autovacuum(conn)
        updates_before, hot_before = await update_counts(conn)
        store = await open_postgres_store(postgres_dsn, backlog_size=BACKLOG)
        try:
            for _ in range(40):
                answers = await asyncio.gather(*(store.heartbeat(j, lease) for j, lease in jobs))
                assert answers == [False] * 5
                await conn.execute("VACUUM jobs")
            assert heartbeat_batcher_of(store).flushes == 40
        finally:
            await store.close()
        await wait_until(lambda: no_other_backends(conn))
        updates_after, hot_after = await update_counts(conn)

    assert updates_after - updates_before == 200
    assert hot_after - hot_before >= 0.9 * 200


async def test_a_batch_holds_at_most_max_batch_heartbeats(postgres_dsn: str) -> None:
    async with connected(postgres_dsn) as conn:
        jobs = await running_jobs(conn, 20)
        async with pooled_heartbeat_batcher(postgres_dsn, max_batch=10) as batcher:
            answers = await heartbeat_all(batcher, jobs, 30)
        assert answers == [False] * 20
        assert batcher.flushes == 2
        assert await beaten_since(conn, 1) == 20


async def test_batching_off_writes_each_heartbeat_on_its_own(postgres_dsn: str) -> None:
    async with (
        connected(postgres_dsn) as conn,
        opened(postgres_dsn, batch_heartbeats=False) as store,
    ):
        (job_id, lease), *_ = await running_jobs(conn, 1)
        assert store.heartbeat_batcher is None
        assert await store.heartbeat(job_id, lease) is False
        with pytest.raises(LeaseLost):
            await store.heartbeat(job_id, "foreign")


# -- one batch, many answers ----------------------------------------------------------------


async def test_each_caller_in_a_batch_gets_its_own_answer(postgres_dsn: str) -> None:
    async with opened(postgres_dsn) as store:
        repo = JobRepository(store)
        plain = await drive(repo, JobState.RUNNING)
        pausing = await drive(repo, JobState.RUNNING)
        await repo.pause(ALICE, pausing.job.id)  # running, with a pause requested
        cancelled = await drive(repo, JobState.CANCELLED)
        unknown = str(uuid.uuid4())
        assert plain.lease is not None
        assert pausing.lease is not None
        assert cancelled.lease is not None
        flushes_before = heartbeat_batcher_of(store).flushes

        calls = [
            (plain.job.id, plain.lease),
            (pausing.job.id, pausing.lease),
            (plain.job.id, "someone-else"),  # a foreign lease on a running job
            (cancelled.job.id, cancelled.lease),
            (unknown, "lease"),
            (plain.job.id, plain.lease),  # a duplicate, answered too
            (pausing.job.id, "someone-else"),
        ]
        answers = await asyncio.gather(
            *(store.heartbeat(j, lease) for j, lease in calls), return_exceptions=True
        )

        assert heartbeat_batcher_of(store).flushes == flushes_before + 1  # all in one batch
        assert answers[0] is False
        assert answers[1] is True
        assert answers[5] is False
        for index, job_id, state in [
            (2, plain.job.id, "running"),
            (3, cancelled.job.id, "cancelled"),
            (6, pausing.job.id, "running"),
        ]:
            error = answers[index]
            assert isinstance(error, LeaseLost), (index, error)
            assert error.details == {"state": state, "job_id": job_id}
        assert isinstance(answers[4], NotFound)
        # Each caller raises its own error object, not one shared by the batch.
        assert answers[2] is not answers[6]


async def test_a_malformed_id_is_refused_without_a_statement(postgres_dsn: str) -> None:
    async with opened(postgres_dsn) as store:
        with pytest.raises(NotFound):
            await store.heartbeat("not-a-uuid", "lease")
        assert heartbeat_batcher_of(store).statements == 0


def other_spellings(job_id: str) -> list[str]:
    """Forms of ``job_id`` that Postgres (and asyncpg) would read as the same uuid."""
    plain = job_id.replace("-", "")
    return [job_id.upper(), "{" + job_id + "}", "urn:uuid:" + job_id, plain, f" {job_id}"]


@pytest.mark.parametrize("batched", [True, False])
async def test_another_spelling_of_a_running_jobs_id_is_not_found(
    postgres_dsn: str, batched: bool
) -> None:
    """A job's id is its canonical text, as in the memory store: the store hands that text
    to Postgres as it is, so any other spelling of the uuid is refused before it is sent."""
    async with opened(postgres_dsn, batch_heartbeats=batched) as store:
        async with connected(postgres_dsn) as conn:
            ((job_id, lease),) = await running_jobs(conn, 1)
        for spelling in other_spellings(job_id):
            with pytest.raises(NotFound):
                await store.heartbeat(spelling, lease)
        assert await store.heartbeat(job_id, lease) is False
        if batched:
            assert heartbeat_batcher_of(store).statements == 1


# -- callers that give up -------------------------------------------------------------------


async def test_a_caller_giving_up_during_the_write_does_not_cancel_it(postgres_dsn: str) -> None:
    """The write is the batcher's task: the caller that gave up stops waiting for it, and
    the others are answered when it commits."""
    async with with_a_locker(postgres_dsn) as (conn, locker, store):
        jobs = await running_jobs(conn, 3)
        async with locker.transaction():
            # The flush must wait for this row lock, so callers are cancelled mid-write.
            calls = await heartbeats_behind_a_row_lock(conn, locker, store, jobs, jobs[2][0])
            calls[0].cancel()
            calls[2].cancel()
            with pytest.raises(asyncio.CancelledError):
                await calls[0]
            assert not calls[1].done()  # still waiting for the commit
        assert await calls[1] is False
        with pytest.raises(asyncio.CancelledError):
            await calls[2]
        assert heartbeat_batcher_of(store).flushes == 1
        assert await beaten_since(conn, 1) == 3  # the write went on for the cancelled too
        assert await store.heartbeat(*jobs[0]) is False  # and the batcher keeps working


# -- outages and contention -----------------------------------------------------------------


async def test_an_unreachable_database_fails_every_caller_with_unavailable() -> None:
    with pytest.raises(Unavailable):
        await open_postgres_store(UNREACHABLE_DSN, backlog_size=BACKLOG, pool=QUICK_FAILING_POOL)

    store = PostgresJobStore(UNREACHABLE_DSN, backlog_size=BACKLOG, pool=QUICK_FAILING_POOL)
    try:
        answers = await asyncio.gather(
            *(store.heartbeat(str(uuid.uuid4()), "lease") for _ in range(20)),
            return_exceptions=True,
        )
        batcher = heartbeat_batcher_of(store)
        assert [type(a) for a in answers] == [Unavailable] * 20
        assert len({id(a) for a in answers}) == 20  # each caller its own error
        assert batcher.flushes == 1  # one connection attempt for the batch
    finally:
        await store.close()
    assert batcher.busy == 0


async def test_a_connection_lost_mid_write_fails_the_batch_with_unavailable(
    postgres_dsn: str,
) -> None:
    async with with_a_locker(postgres_dsn) as (conn, locker, store):
        jobs = await running_jobs(conn, 4)
        async with locker.transaction():
            calls = await heartbeats_behind_a_row_lock(conn, locker, store, jobs, jobs[0][0])
            ended = await conn.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            assert ended == 1
            answers = await asyncio.gather(*calls, return_exceptions=True)
        assert [type(a) for a in answers] == [Unavailable] * 4
        # The pool replaces the connection; at most the first call may still meet it.
        with contextlib.suppress(Unavailable):
            await store.heartbeat(*jobs[0])
        assert await store.heartbeat(*jobs[0]) is False


async def test_a_deadlock_between_batches_is_retried(postgres_dsn: str) -> None:
    """Two multi-row writers locking the same jobs in opposite orders deadlock; Postgres
    aborts the batch statement (the one whose deadlock check runs first, here), which wrote
    nothing, and the batcher runs it again."""
    async with connected(postgres_dsn) as conn:
        # The store's sessions check for deadlocks after 0.5 s, the other writer's after
        # a minute: the batch is the one Postgres aborts.
        database = await conn.fetchval("SELECT current_database()")
        await conn.execute(f"ALTER DATABASE \"{database}\" SET deadlock_timeout = '500ms'")
    async with (
        connected(postgres_dsn) as conn,
        connected(postgres_dsn) as other,
        opened(postgres_dsn) as store,
    ):
        (first, first_lease), (second, second_lease) = await running_jobs(conn, 2)
        await other.execute("SET deadlock_timeout = '60s'")
        beat = "UPDATE jobs SET last_heartbeat_at = now() WHERE id = $1"
        async with other.transaction():
            await other.execute(beat, uuid.UUID(second))
            # The batch takes the first job (lower id, first on the page), waits for the second.
            calls = [
                asyncio.create_task(store.heartbeat(first, first_lease)),
                asyncio.create_task(store.heartbeat(second, second_lease)),
            ]
            await wait_until(lambda: lock_waiters(conn))
            # Now the other writer wants the first job: a cycle.
            await other.execute(beat, uuid.UUID(first))
        assert await asyncio.gather(*calls) == [False, False]
        batcher = heartbeat_batcher_of(store)
        assert batcher.deadlock_retries >= 1  # (1 unless the host is too slow for the backoff)
        assert batcher.flushes == 1


# -- closing --------------------------------------------------------------------------------


async def test_close_writes_pending_heartbeats_and_leaves_no_task(postgres_dsn: str) -> None:
    async with connected(postgres_dsn) as conn:
        jobs = await running_jobs(conn, 5)
        store = await open_postgres_store(postgres_dsn, backlog_size=BACKLOG)
        batcher = heartbeat_batcher_of(store)
        calls = [asyncio.create_task(store.heartbeat(j, lease)) for j, lease in jobs]
        # Created after the calls, so it runs after they joined (tasks start in order).
        closing = asyncio.create_task(store.close())

        await asyncio.wait_for(closing, timeout=30)

        assert all(c.done() for c in calls)
        assert [c.result() for c in calls] == [False] * 5
        assert await beaten_since(conn, 1) == 5
        assert batcher.busy == 0
        assert asyncio.all_tasks() == {asyncio.current_task()}
        with pytest.raises(Unavailable):
            await store.heartbeat(*jobs[0])


async def test_close_waits_for_the_write_in_flight_and_the_batch_behind_it(
    postgres_dsn: str,
) -> None:
    async with with_a_locker(postgres_dsn) as (conn, locker, store):
        jobs = await running_jobs(conn, 4)
        batcher = heartbeat_batcher_of(store)
        async with locker.transaction():
            first = await heartbeats_behind_a_row_lock(conn, locker, store, jobs[:2], jobs[0][0])
            behind = [asyncio.create_task(store.heartbeat(j, lease)) for j, lease in jobs[2:]]
            await wait_until(lambda: _true(batcher.waiting == 2))
            closing = asyncio.create_task(store.close())
        await asyncio.wait_for(closing, timeout=30)
        assert [c.result() for c in first + behind] == [False] * 4
        assert batcher.flushes == 2
        assert await beaten_since(conn, 1) == 4
        assert batcher.busy == 0


async def test_close_answers_pending_callers_even_when_the_database_is_gone() -> None:
    store = PostgresJobStore(UNREACHABLE_DSN, backlog_size=BACKLOG, pool=QUICK_FAILING_POOL)
    batcher = heartbeat_batcher_of(store)
    calls = [asyncio.create_task(store.heartbeat(str(uuid.uuid4()), "L")) for _ in range(3)]
    closing = asyncio.create_task(store.close())  # runs after the calls joined

    await asyncio.wait_for(closing, timeout=30)

    assert [type(c.exception()) for c in calls] == [Unavailable] * 3
    assert batcher.flushes == 1
    assert batcher.busy == 0
    assert asyncio.all_tasks() == {asyncio.current_task()}


# -- helpers --------------------------------------------------------------------------------


async def _true(value: bool) -> bool:
    return value
