"""Grouped progress writes on Postgres: one statement for many reports, each its own answer.

The store contract (tests/test_store_contract.py, batching on by default) covers a report on
its own; these tests cover what grouping adds: many jobs in one statement, seqs reserved per
row, errors sorted out per caller exactly as the unbatched path gives them, a job twice in
one batch, the backlog trimmed, outages and closing.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import asyncpg
import pytest

from jobspine_shared.states import JobState
from server.commands.worker import parse_progress
from server.errors import InvalidProgress, JobspineError, LeaseLost, NotFound, Unavailable
from server.service import JobRepository, RepositorySettings
from server.store.postgres import PostgresJobStore
from server.store.progress import ProgressResult, ProgressWrite
from tests.support.batching import BACKLOG, opened, progress_batcher_of
from tests.support.jobs import ALICE, drive, wait_until
from tests.support.postgres import QUICK_FAILING_POOL, open_postgres_store

UNREACHABLE_DSN = "postgresql://postgres@127.0.0.1:1/postgres"
S = JobState


def repository(store: PostgresJobStore) -> JobRepository:
    return JobRepository(store, RepositorySettings(progress_events_per_s=0))


async def running(repo: JobRepository, count: int) -> list[tuple[str, str]]:
    jobs = []
    for _ in range(count):
        driven = await drive(repo, S.RUNNING)
        assert driven.lease
        jobs.append((driven.job.id, driven.lease))
    return jobs


async def stored_events(dsn: str) -> dict[str, list[tuple[int, Any]]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT job_id, seq, data FROM job_events ORDER BY job_id, seq")
    finally:
        await conn.close()
    events: dict[str, list[tuple[int, Any]]] = {}
    for row in rows:
        events.setdefault(str(row["job_id"]), []).append((row["seq"], row["data"]))
    return events


def write(lease: str, progress: float, *, event: bool = True) -> ProgressWrite:
    return ProgressWrite(lease=lease, progress=progress, step=f"at {progress}", with_event=event)


async def test_reports_of_many_jobs_share_few_statements(postgres_dsn: str) -> None:
    async with opened(postgres_dsn) as store:
        repo = repository(store)
        jobs = await running(repo, 40)
        before = {job_id: (await repo.get_job(ALICE, job_id)).seq for job_id, _ in jobs}

        results = await asyncio.gather(
            *(store.update_progress(job_id, write(lease, 42.5)) for job_id, lease in jobs)
        )

        batcher = progress_batcher_of(store)
        assert batcher.flushes < len(jobs) / 4
        for (job_id, _), result in zip(jobs, results, strict=True):
            job = await repo.get_job(ALICE, job_id)
            assert (job.progress, job.step, job.seq) == (42.5, "at 42.5", before[job_id] + 1)
            (event,) = result.events
            assert (event.seq, str(event.type)) == (before[job_id] + 1, "job:progress")
            assert event.data == {"progress": 42.5, "step": "at 42.5"}
            assert (event.job_id, event.user_id, event.epoch) == (job.id, job.user_id, job.epoch)
            # What the stream holds is what the caller was given (committed, same data).
            read = await store.read_stream(job_id, before[job_id])
            assert read is not None
            assert read.events == (event,)


async def test_batched_and_unbatched_reports_store_the_same(postgres_dsn: str) -> None:
    """Same rows, same events, same JSON (``50.0`` stays a float on replay)."""
    async with (
        opened(postgres_dsn) as batched,
        opened(postgres_dsn, batch_progress=False) as single,
    ):
        assert single.progress_batcher is None
        outcomes: list[tuple[Any, ...]] = []
        for store in (batched, single):
            repo = repository(store)
            ((job_id, lease),) = await running(repo, 1)
            first = await store.update_progress(job_id, write(lease, 50.0))
            held = await store.update_progress(job_id, write(lease, 60.0, event=False))
            read = await store.read_stream(job_id, 0)
            assert read is not None
            assert read.events[-1:] == first.events  # what the caller was given is stored
            outcomes.append(
                (
                    [(e.seq, e.type, e.data, type(e.data["progress"])) for e in first.events],
                    held.events,
                    read.job.record.seq - first.events[0].seq,
                    read.job.record.progress,
                    [(e.type, e.data) for e in read.events[-1:]],
                )
            )
        assert outcomes[0] == outcomes[1]
        assert outcomes[0][2] == 0  # a report without its event does not move seq


async def _answer(call: Any) -> ProgressResult | JobspineError:
    try:
        result: ProgressResult = await call
    except JobspineError as error:
        return error
    return result


def _shape(outcome: ProgressResult | JobspineError) -> Any:
    if isinstance(outcome, JobspineError):
        details = {
            k: v for k, v in (outcome.details or {}).items() if k != "job_id"
        }  # differs per run
        return (type(outcome).__name__, outcome.code, outcome.message, details)
    return ("ok", [(e.seq, e.data) for e in outcome.events])


async def test_errors_in_a_batch_are_each_callers_own_and_the_unbatched_ones(
    postgres_dsn: str,
) -> None:
    shapes = []
    for batched in (True, False):
        async with opened(postgres_dsn, batch_progress=batched) as store:
            repo = repository(store)
            ok, lower, foreign, cancelled, held = await running(repo, 5)
            await store.update_progress(lower[0], write(lower[1], 80.0))
            await repo.cancel(ALICE, cancelled[0])
            calls = [
                store.update_progress(ok[0], write(ok[1], 10.0)),
                store.update_progress(lower[0], write(lower[1], 20.0)),
                store.update_progress(foreign[0], write("someone-elses-lease", 30.0)),
                store.update_progress(cancelled[0], write(cancelled[1], 40.0)),
                store.update_progress(str(uuid.uuid4()), write("lease", 50.0)),
                store.update_progress(held[0], write(held[1], 60.0, event=False)),
            ]
            outcomes = await asyncio.gather(*(_answer(call) for call in calls))
            if batched:
                assert progress_batcher_of(store).flushes <= 3  # the first report, then one batch
            assert isinstance(outcomes[1], InvalidProgress)
            assert isinstance(outcomes[2], LeaseLost)
            assert isinstance(outcomes[3], LeaseLost)
            assert (outcomes[3].details or {}).get("state") == "cancelled"
            assert isinstance(outcomes[4], NotFound)
            # Refused reports changed nothing.
            assert (await repo.get_job(ALICE, lower[0])).progress == 80.0
            assert (await repo.get_job(ALICE, foreign[0])).progress == 0.0
            shapes.append([_shape(o) for o in outcomes])
    assert shapes[0] == shapes[1]


async def test_a_job_twice_in_one_batch_is_written_in_arrival_order(postgres_dsn: str) -> None:
    """Across web instances a job can be reported twice at once (the repository's per-job
    lock is per process): both apply, in order, with consecutive seqs."""
    async with opened(postgres_dsn) as store:
        repo = repository(store)
        ((job_id, lease),) = await running(repo, 1)
        start = (await repo.get_job(ALICE, job_id)).seq
        first, second, lower = await asyncio.gather(
            store.update_progress(job_id, write(lease, 30.0)),
            store.update_progress(job_id, write(lease, 70.0)),
            _answer(store.update_progress(job_id, write(lease, 50.0))),
        )
        assert [e.seq for e in first.events + second.events] == [start + 1, start + 2]
        assert isinstance(lower, InvalidProgress)
        job = await repo.get_job(ALICE, job_id)
        assert (job.progress, job.seq) == (70.0, start + 2)


async def test_seqs_stay_contiguous_under_concurrent_reports(postgres_dsn: str) -> None:
    async with opened(postgres_dsn) as store:
        repo = repository(store)
        jobs = await running(repo, 8)
        rounds = 10
        await asyncio.gather(
            *(
                repo.update_progress(
                    parse_progress({"job_id": job_id, "lease": lease, "progress": float(step)})
                )
                for step in range(1, rounds + 1)
                for job_id, lease in jobs
            )
        )
        events = await stored_events(postgres_dsn)
        for job_id, _ in jobs:
            job = await repo.get_job(ALICE, job_id)
            assert job.progress == float(rounds)
            assert job.seq == 2 + rounds  # created, started, one event per report
            assert [seq for seq, _ in events[job_id]] == list(
                range(job.seq - BACKLOG + 1, job.seq + 1)
            )
        assert progress_batcher_of(store).flushes < len(jobs) * rounds


async def test_batches_trim_each_jobs_backlog(postgres_dsn: str) -> None:
    async with opened(postgres_dsn) as store:
        repo = repository(store)
        jobs = await running(repo, 3)
        for step in range(1, 13):
            await asyncio.gather(
                *(
                    store.update_progress(job_id, write(lease, float(step)))
                    for job_id, lease in jobs
                )
            )
        events = await stored_events(postgres_dsn)
        for job_id, _ in jobs:
            seqs = [seq for seq, _ in events[job_id]]
            assert seqs == list(range(14 - BACKLOG + 1, 15))
            assert json.loads(events[job_id][-1][1]) == {"progress": 12.0, "step": "at 12.0"}


async def test_an_outage_fails_the_batch_with_unavailable() -> None:
    store = PostgresJobStore(UNREACHABLE_DSN, backlog_size=BACKLOG, pool=QUICK_FAILING_POOL)
    try:
        job_ids = [str(uuid.uuid4()) for _ in range(3)]
        outcomes = await asyncio.gather(
            *(_answer(store.update_progress(j, write("lease", 5.0))) for j in job_ids)
        )
        assert all(isinstance(o, Unavailable) for o in outcomes), outcomes
        assert len({id(o) for o in outcomes}) == 3  # each caller its own error object
    finally:
        await store.close()


async def test_a_quiet_batcher_writes_at_once_a_busy_one_collects_and_closing_writes_all(
    postgres_dsn: str,
) -> None:
    """Group commit, no timer: a report with no batch being written goes out at once; reports
    that arrive while a batch is being written (here held up by a row lock) make up the next
    batch, written as soon as the first is done; closing writes both, then refuses reports."""
    store = await open_postgres_store(postgres_dsn, backlog_size=BACKLOG)
    conn = await asyncpg.connect(postgres_dsn)
    try:
        batcher = progress_batcher_of(store)
        repo = repository(store)
        (one, one_lease), (two, two_lease), (three, three_lease) = await running(repo, 3)
        quiet = await asyncio.wait_for(store.update_progress(one, write(one_lease, 10.0)), 30)
        assert [e.data["progress"] for e in quiet.events] == [10.0]
        assert batcher.flushes == 1

        locker = conn.transaction()
        await locker.start()
        await conn.execute("SELECT 1 FROM jobs WHERE id = $1 FOR UPDATE", uuid.UUID(one))
        blocked = asyncio.ensure_future(store.update_progress(one, write(one_lease, 20.0)))
        await wait_until(lambda: _true(batcher.flushes == 2))  # in flight, behind the lock
        behind = [
            asyncio.ensure_future(store.update_progress(two, write(two_lease, 30.0))),
            asyncio.ensure_future(store.update_progress(three, write(three_lease, 40.0))),
        ]
        await wait_until(lambda: _true(batcher.waiting == 2))
        assert batcher.flushes == 2  # one batch in flight at a time

        closing = asyncio.ensure_future(batcher.close())
        await locker.rollback()
        assert [e.data["progress"] for e in (await asyncio.wait_for(blocked, 30)).events] == [20.0]
        answers = await asyncio.wait_for(asyncio.gather(*behind), 30)
        assert [e.data["progress"] for a in answers for e in a.events] == [30.0, 40.0]
        await asyncio.wait_for(closing, 30)
        assert (batcher.flushes, batcher.rounds) == (3, 3)  # the two behind shared one
        with pytest.raises(Unavailable):
            await store.update_progress(two, write(two_lease, 34.0))
    finally:
        await conn.close()
        await store.close()


async def _true(value: bool) -> bool:
    return value
