"""Fewer statements per job on Postgres (docs/performance.md, "Postgres: fewer statements per
job"): the active-jobs count reads the active jobs only; a job never claimed and without a
checkpoint is chosen and claimed in one statement, every other claim as before."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import attrs
import pytest

from jobspine_shared.events import EventType
from jobspine_shared.states import JobState
from server.commands.create import parse_create
from server.commands.user import parse_read_stream, parse_restart
from server.commands.worker import parse_checkpoint, parse_claim, parse_paused
from server.service import JobRepository, RepositorySettings
from server.store.claiming import claim_change, first_claim_change, is_first_claim
from server.store.model import ClaimResult, StoredJob
from server.store.postgres import PostgresJobStore
from server.store.postgres.queries import COUNT_ACTIVE
from tests.support.jobs import ADMIN, ALICE, WORKER, create, wait_until
from tests.support.postgres import ONE_CONNECTION, connected, opened_postgres_store
from tests.support.query_plans import fill_jobs, plan_of
from tests.support.wire_samples import record

S = JobState
BACKLOG = 50


@pytest.mark.postgres
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


def test_the_first_claim_is_the_claim_of_a_job_never_claimed() -> None:
    fresh = StoredJob(record=record(state=S.CREATED, attempt=0))
    assert is_first_claim(fresh)
    assert claim_change(fresh, worker_id="w", lease="L") == first_claim_change(
        worker_id="w", lease="L"
    )
    retried = StoredJob(record=fresh.record.evolve(attempt=1))
    assert not is_first_claim(retried)
    assert claim_change(retried, worker_id="w", lease="L") != first_claim_change(
        worker_id="w", lease="L"
    )


class StatementLog:
    """The statements a store sends while :func:`recording` (asyncpg's query loggers, which
    report each statement on the next turn of the loop). asyncpg also sends its own type
    introspection the first time a connection prepares a statement: the tests claim once
    before they record, on a pool of one connection."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def __call__(self, record: Any) -> None:
        self.sent.append(record.query.split(None, 1)[0].rstrip(";").upper())

    async def after(self, count: int) -> list[str]:
        """The statements sent, once ``count`` of them were reported."""

        async def reported() -> bool:
            return len(self.sent) >= count

        await wait_until(reported)
        return self.sent


@contextlib.contextmanager
def recording(store: PostgresJobStore) -> Iterator[StatementLog]:
    log = StatementLog()
    pool = store._pool  # the statements on its connections are what these tests count
    checkout = pool.connection

    @contextlib.asynccontextmanager
    async def logged(acquire_timeout: float | None = None) -> AsyncIterator[Any]:
        async with checkout(acquire_timeout) as conn:
            conn.add_query_logger(log)
            try:
                yield conn
            finally:
                conn.remove_query_logger(log)

    pool.connection = logged  # type: ignore[method-assign]
    try:
        yield log
    finally:
        pool.connection = checkout  # type: ignore[method-assign]


@attrs.frozen
class Opened:
    store: PostgresJobStore
    repo: JobRepository


@pytest.fixture
async def opened(postgres_dsn: str) -> AsyncIterator[Opened]:
    """A store on one connection (see :class:`StatementLog`) and its service."""
    async with opened_postgres_store(
        postgres_dsn, backlog_size=BACKLOG, pool=ONE_CONNECTION
    ) as store:
        yield Opened(store, JobRepository(store, RepositorySettings(progress_events_per_s=0)))


async def _claim(repo: JobRepository) -> ClaimResult | None:
    return await repo.claim(parse_claim({}, default_worker_id=WORKER.id))


async def _started(repo: JobRepository, job_id: str) -> dict[str, Any]:
    replay = await repo.replay(ADMIN, parse_read_stream({"job_id": job_id, "after_seq": 0}))
    (started,) = [e for e in replay.events if e.type is EventType.STARTED][-1:]
    return dict(started.data)


@pytest.mark.postgres
async def test_a_first_claim_is_one_statement(opened: Opened) -> None:
    store, repo = opened.store, opened.repo
    await create(repo)
    assert await _claim(repo) is not None  # (its statement is prepared)
    job = await create(repo)
    with recording(store) as log:
        claimed = await _claim(repo)
        assert await log.after(1) == ["WITH"]
    assert claimed is not None
    assert (claimed.job.id, claimed.job.state, claimed.job.attempt) == (job.id, S.RUNNING, 1)
    assert claimed.checkpoint is None
    assert [(e.seq, e.type) for e in claimed.events] == [(2, EventType.STARTED)]
    assert claimed.job.started_at is not None
    assert claimed.job.started_at >= job.created_at
    assert claimed.events[0].data == {"attempt": 1, "worker_id": WORKER.id, "resumed": False}
    stored = await store.get(job.id)
    assert stored is not None
    assert (stored.lease, stored.record.seq) == (claimed.lease, 2)
    assert await _started(repo, job.id) == claimed.events[0].data
    with recording(store) as log:
        assert await _claim(repo) is None  # an empty queue: one statement too
        assert await log.after(1) == ["WITH"]


@pytest.mark.postgres
async def test_a_job_with_a_checkpoint_comes_first_and_is_claimed_as_before(opened: Opened) -> None:
    """The first claim's statement chooses it (claim order), does not fit it, writes nothing;
    the transaction claims it, resumed at its checkpoint. A fresh job behind it waits."""
    store, repo = opened.store, opened.repo
    job = await create(repo)
    lease = (await _claim(repo) or pytest.fail("not claimed")).lease
    await repo.checkpoint(
        parse_checkpoint({"job_id": job.id, "lease": lease, "data": {"step": 3}, "progress": 30})
    )
    await repo.pause(ALICE, job.id)
    await repo.paused(parse_paused({"job_id": job.id, "lease": lease}))
    fresh = await create(repo)
    await repo.resume(ALICE, job.id)
    # (Each statement prepared: a restarted job, claimed in the transaction.)
    warm = (
        await repo.create(ALICE, parse_create({"type": "research", "input": {}, "priority": 1}))
    ).job
    assert (await _claim(repo) or pytest.fail("not claimed")).job.id == warm.id
    await repo.cancel(ALICE, warm.id)
    await repo.restart(ALICE, parse_restart({"job_id": warm.id}))
    assert (await _claim(repo) or pytest.fail("not claimed")).job.id == warm.id
    with recording(store) as log:
        claimed = await _claim(repo)
        assert await log.after(5) == ["WITH", "BEGIN", "SELECT", "WITH", "COMMIT"]
    assert claimed is not None
    assert (claimed.job.id, claimed.job.attempt, claimed.job.progress) == (job.id, 2, 30.0)
    assert claimed.checkpoint == {"step": 3}
    assert claimed.events[0].data == {"attempt": 2, "worker_id": WORKER.id, "resumed": True}
    assert await _started(repo, job.id) == claimed.events[0].data
    next_one = await _claim(repo)
    assert next_one is not None
    assert next_one.job.id == fresh.id


@pytest.mark.postgres
async def test_a_restarted_job_is_claimed_at_its_next_attempt(opened: Opened) -> None:
    repo = opened.repo
    job = await create(repo)
    assert await _claim(repo) is not None
    await repo.cancel(ALICE, job.id)
    await repo.restart(ALICE, parse_restart({"job_id": job.id}))
    claimed = await _claim(repo)
    assert claimed is not None
    assert (claimed.job.id, claimed.job.attempt) == (job.id, 2)
    assert claimed.events[0].data == {"attempt": 2, "worker_id": WORKER.id, "resumed": False}
    assert await _started(repo, job.id) == claimed.events[0].data
