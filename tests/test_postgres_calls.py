"""Fewer statements per job on Postgres (docs/performance.md, "Postgres: fewer statements per
job"): the active-jobs count reads the active jobs only; a create is one statement, stamped
with a time Postgres's clock has reached; a job never claimed and without a checkpoint is
chosen and claimed in one statement, every other claim as before."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest

from jobspine_shared.events import EventType
from jobspine_shared.models import JobEvent, JobSpec
from jobspine_shared.states import JobState
from jobspine_shared.wire import job_to_wire
from server.commands.user import parse_read_stream, parse_restart
from server.commands.worker import parse_checkpoint, parse_claim, parse_paused
from server.service import JobRepository, RepositorySettings
from server.store.base import NewJob
from server.store.claiming import claim_change, first_claim_change, is_first_claim
from server.store.model import ChangeResult, CheckpointInfo, ClaimResult, EventSpec, StoredJob
from server.store.postgres import PostgresJobStore
from server.store.postgres.clock import ClockBound
from server.store.postgres.queries import COUNT_ACTIVE
from server.store.postgres.writes import FIRST_CLAIM_FITS
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


@pytest.mark.postgres
async def test_the_first_claims_sql_fits_the_jobs_is_first_claim_holds_for(
    postgres_dsn: str,
) -> None:
    """``FIRST_CLAIM_FITS`` is ``is_first_claim`` in SQL: the rule is stated twice, so a
    change to one alone fails here (each pair of attempt and checkpoint, over the rows)."""
    async with connected(postgres_dsn) as conn:
        await fill_jobs(conn, 4)
        await conn.execute(
            "UPDATE jobs SET attempt = n.k % 2, has_checkpoint = n.k >= 2,"
            " checkpoint_at = CASE WHEN n.k >= 2 THEN now() END,"
            " checkpoint_size = CASE WHEN n.k >= 2 THEN 2 END,"
            " checkpoint_progress = CASE WHEN n.k >= 2 THEN 0 END,"
            " checkpoint_keys = CASE WHEN n.k >= 2 THEN '{}'::text[] END"
            " FROM (SELECT id, row_number() OVER (ORDER BY id) - 1 AS k FROM jobs) AS n"
            " WHERE jobs.id = n.id"
        )
        rows = await conn.fetch(f"SELECT attempt, has_checkpoint, {FIRST_CLAIM_FITS} FROM jobs")
    judged = {(r["attempt"], r["has_checkpoint"]): r[2] for r in rows}
    assert len(judged) == 4
    held = CheckpointInfo(saved_at=datetime.now(UTC), size_bytes=2, progress=0.0, keys=())
    for (attempt, has_checkpoint), fits in judged.items():
        job = StoredJob(
            record=record(state=S.CREATED, attempt=attempt, has_checkpoint=has_checkpoint),
            checkpoint=held if has_checkpoint else None,
        )
        assert fits == is_first_claim(job), (attempt, has_checkpoint)
    assert list(judged.values()).count(True) == 1


#: What asyncpg itself sends the first time a connection prepares a statement of a type it
#: has not met (its type introspection), whichever statement the store sent.
INTROSPECTION = ("typeinfo_tree", "current_setting('jit')")


class StatementLog:
    """The statements a store sends while :func:`recording`, by their first word, asyncpg's
    own introspection left out (asyncpg's query loggers, which report each statement on the
    next turn of the loop)."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def __call__(self, record: Any) -> None:
        if not any(mark in record.query for mark in INTROSPECTION):
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


class Wall:
    """The local clock, set ahead of the true time by ``ahead``."""

    def __init__(self) -> None:
        self.ahead = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.ahead


@attrs.frozen
class Opened:
    store: PostgresJobStore
    repo: JobRepository
    wall: Wall


@pytest.fixture
async def opened(postgres_dsn: str) -> AsyncIterator[Opened]:
    """A store on one connection (its statements in the order sent), its wall clock and
    its service."""
    wall = Wall()
    async with opened_postgres_store(
        postgres_dsn, backlog_size=BACKLOG, pool=ONE_CONNECTION, clock=ClockBound(wall)
    ) as store:
        repo = JobRepository(store, RepositorySettings(progress_events_per_s=0))
        yield Opened(store, repo, wall)


def test_the_clock_bound_keeps_the_largest_lower_bound() -> None:
    wall = Wall()
    clock = ClockBound(wall)
    assert clock.now() is None  # nothing known before a statement answered
    base = datetime.now(UTC)
    clock.answered(base - timedelta(seconds=5))
    clock.answered(base - timedelta(seconds=2))
    clock.answered(base - timedelta(seconds=9))
    known = clock.now()
    assert known is not None
    assert base - timedelta(seconds=2) <= known < datetime.now(UTC) - timedelta(seconds=1.5)
    wall.ahead = timedelta(hours=1)  # the local clock stepped forward
    clock.refused(datetime.now(UTC))
    again = clock.now()
    assert again is not None
    assert again <= datetime.now(UTC)


async def _replayed(repo: JobRepository, job_id: str) -> list[JobEvent]:
    replay = await repo.replay(ADMIN, parse_read_stream({"job_id": job_id, "after_seq": 0}))
    return list(replay.events)


async def _created(opened: Opened) -> ChangeResult:
    """A create through the store, with the event the service gives it."""
    job = NewJob(id=str(uuid.uuid4()), user_id=ALICE.id, epoch="e1", spec=JobSpec(type="t"))
    event = EventSpec(type=EventType.CREATED, data=lambda made: {"job": job_to_wire(made.record)})
    return await opened.store.create(job, event=event)


@pytest.mark.postgres
async def test_a_create_is_one_statement_once_the_clock_is_known(opened: Opened) -> None:
    store, repo = opened.store, opened.repo
    with recording(store) as log:
        first = await create(repo)  # nothing known of Postgres's clock: its transaction
        assert await log.after(4) == ["BEGIN", "INSERT", "WITH", "COMMIT"]
    assert first.seq == 1
    with recording(store) as log:
        made = await _created(opened)
        assert await log.after(1) == ["WITH"]
    record = made.job.record
    stored = await store.get(record.id)
    assert stored is not None
    assert stored.record == record
    assert record.created_at == record.updated_at >= first.created_at
    (event,) = made.events
    assert (event.seq, event.type, event.at) == (1, EventType.CREATED, record.created_at)
    assert event.data == {"job": job_to_wire(record)}
    assert await _replayed(repo, record.id) == [event]
    claimed = await _claim(repo)  # (first, then made)
    claimed = await _claim(repo)
    assert claimed is not None
    assert claimed.job.id == record.id
    assert claimed.job.started_at is not None
    assert claimed.job.started_at >= record.created_at


@pytest.mark.postgres
async def test_a_create_ahead_of_postgres_clock_writes_nothing_then_takes_its_transaction(
    opened: Opened,
) -> None:
    store, repo = opened.store, opened.repo
    await create(repo)  # (the clock known, each statement prepared)
    await _created(opened)
    opened.wall.ahead = timedelta(hours=1)  # the local clock steps forward
    with recording(store) as log:
        made = await _created(opened)
        assert await log.after(5) == ["WITH", "BEGIN", "INSERT", "WITH", "COMMIT"]
    record = made.job.record
    assert record.created_at < datetime.now(UTC) + timedelta(minutes=1)  # Postgres's time
    assert await _replayed(repo, record.id) == list(made.events)
    stored = await store.get(record.id)
    assert stored is not None
    assert stored.record == record
    with recording(store) as log:  # the bound learnt from that answer: one statement again
        again = await _created(opened)
        assert await log.after(1) == ["WITH"]
    assert again.job.record.created_at < datetime.now(UTC) + timedelta(minutes=1)
    assert (await _replayed(repo, again.job.record.id))[0].data == {
        "job": job_to_wire(again.job.record)
    }


async def _claim(repo: JobRepository) -> ClaimResult | None:
    return await repo.claim(parse_claim({}, default_worker_id=WORKER.id))


async def _started(repo: JobRepository, job_id: str) -> dict[str, Any]:
    replay = await repo.replay(ADMIN, parse_read_stream({"job_id": job_id, "after_seq": 0}))
    (started,) = [e for e in replay.events if e.type is EventType.STARTED][-1:]
    return dict(started.data)


@pytest.mark.postgres
async def test_a_first_claim_is_one_statement(opened: Opened) -> None:
    store, repo = opened.store, opened.repo
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


@pytest.mark.postgres
async def test_a_checkpoint_row_the_job_does_not_hold_is_not_handed_to_its_worker(
    opened: Opened, postgres_dsn: str
) -> None:
    """The row a restart's clear could leave behind (it reads its statement's snapshot):
    the job says it holds no checkpoint, and its claim says so too."""
    repo = opened.repo
    job = await create(repo)
    assert await _claim(repo) is not None
    await repo.cancel(ALICE, job.id)
    await repo.restart(ALICE, parse_restart({"job_id": job.id}))
    async with connected(postgres_dsn) as conn:
        await conn.execute(
            "INSERT INTO job_checkpoints (job_id, data) VALUES ($1::uuid, '{\"stale\": 1}')",
            job.id,
        )
    claimed = await _claim(repo)
    assert claimed is not None
    assert (claimed.job.id, claimed.job.has_checkpoint, claimed.checkpoint) == (job.id, False, None)
    assert claimed.events[0].data["resumed"] is False
