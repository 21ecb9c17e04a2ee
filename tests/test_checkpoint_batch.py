"""Grouped checkpoints on Postgres: one statement for many jobs' checkpoints, each caller its
own answer.

The store contract (tests/test_store_contract.py, tests/test_store_progress.py, batching on
by default) and the fencing suite cover a checkpoint on its own; these tests cover what
grouping adds: many jobs in one statement with their data, keys and seqs, the same rows as
the unbatched path, errors sorted out per caller, a job twice in one batch (two web
instances), a batch formed behind a row lock with a caller that gives up, a deadlock retried,
and closing.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import attrs
import pytest

from jobspine_shared.events import EventType
from jobspine_shared.states import JobState
from server.commands.worker import parse_checkpoint, parse_progress
from server.errors import InvalidProgress, JobspineError, LeaseLost, NotFound, Unavailable
from server.service import JobRepository, RepositorySettings
from server.store.model import NOW, AuditWrite, CheckpointWrite, EventSpec, JobChange
from server.store.postgres import PostgresJobStore
from server.store.postgres.checkpoint_batch import CheckpointBatcher, batchable
from tests.support.batching import opened
from tests.support.heartbeat_rows import running_jobs
from tests.support.jobs import ALICE, drive, wait_until
from tests.support.postgres import connected

S = JobState


def repository(store: PostgresJobStore, *, events_per_s: float = 0) -> JobRepository:
    return JobRepository(store, RepositorySettings(progress_events_per_s=events_per_s))


def batcher_of(store: PostgresJobStore) -> CheckpointBatcher:
    batcher = store.checkpoint_batcher
    assert batcher is not None, "batching is off"
    return batcher


async def running(repo: JobRepository, count: int) -> list[tuple[str, str]]:
    jobs = []
    for _ in range(count):
        driven = await drive(repo, S.RUNNING)
        assert driven.lease
        jobs.append((driven.job.id, driven.lease))
    return jobs


async def checkpoint(
    repo: JobRepository, job_id: str, lease: str, data: dict[str, Any], progress: float | None
) -> Any:
    payload: dict[str, Any] = {"job_id": job_id, "lease": lease, "data": data}
    if progress is not None:
        payload["progress"] = progress
    return await repo.checkpoint(parse_checkpoint(payload))


async def outcome(call: Any) -> Any:
    try:
        return await call
    except JobspineError as error:
        return error


async def test_checkpoints_of_many_jobs_share_few_statements(postgres_dsn: str) -> None:
    async with opened(postgres_dsn) as store:
        repo = repository(store)
        jobs = await running(repo, 30)
        before = {job_id: (await repo.get_job(ALICE, job_id)).seq for job_id, _ in jobs}

        saved = await asyncio.gather(
            *(
                checkpoint(repo, job_id, lease, {"zeta": i, "alpha": [i], "mid": {}}, float(i))
                for i, (job_id, lease) in enumerate(jobs)
            )
        )

        batcher = batcher_of(store)
        assert batcher.flushes < len(jobs) / 4
        for i, ((job_id, _), at) in enumerate(zip(jobs, saved, strict=True)):
            job = await store.get(job_id)
            assert job is not None
            assert job.checkpoint is not None
            assert (job.record.progress, job.record.seq) == (float(i), before[job_id] + 1)
            assert job.checkpoint.saved_at == at == job.record.checkpoint_at
            assert job.checkpoint.keys == ("zeta", "alpha", "mid")  # the data's own order
            assert job.checkpoint.progress == float(i)
            stored = await store.get_checkpoint(job_id)
            assert stored is not None
            assert stored.data == {"zeta": i, "alpha": [i], "mid": {}}
            read = await store.read_stream(job_id, before[job_id])
            assert read is not None
            assert [(e.seq, str(e.type), e.data) for e in read.events] == [
                (
                    before[job_id] + 1,
                    "job:checkpoint",
                    {"size_bytes": job.checkpoint.size_bytes, "progress": float(i)},
                )
            ]


async def _stored(store: PostgresJobStore, job_id: str) -> tuple[Any, ...]:
    """What a job holds, times and ids left out."""
    job = await store.get(job_id)
    read = await store.read_stream(job_id, 0)
    saved = await store.get_checkpoint(job_id)
    assert job is not None
    assert read is not None
    assert saved is not None
    info = saved.info
    return (
        job.record.progress,
        job.record.step,
        job.record.seq,
        job.record.has_checkpoint,
        (info.size_bytes, info.keys, info.progress, saved.data),
        [(e.seq, e.type, e.data, type(e.data.get("progress"))) for e in read.events],
    )


async def _on_both(jobs: list[tuple[str, str]], call: Any) -> list[Any]:
    """``call(job_id, lease)`` for each of ``jobs`` at once: their outcomes."""
    return await asyncio.gather(*(outcome(call(job_id, lease)) for job_id, lease in jobs))


async def _checkpoint_story(store: PostgresJobStore) -> list[tuple[Any, ...]]:
    """Reports, checkpoints with and without progress, one refused, on two jobs at a time;
    what the jobs hold after."""
    repo = repository(store, events_per_s=0.01)  # every report after the first held
    jobs = await running(repo, 2)
    for value in (10.0, 20.0):
        await _on_both(
            jobs,
            lambda job_id, lease: repo.update_progress(
                parse_progress({"job_id": job_id, "lease": lease, "progress": value})  # noqa: B023
            ),
        )
    await _on_both(
        jobs, lambda job_id, lease: checkpoint(repo, job_id, lease, {"b": 1, "a": 2}, None)
    )
    await _on_both(jobs, lambda job_id, lease: checkpoint(repo, job_id, lease, {"c": "x"}, 40.0))
    lower = await _on_both(
        jobs, lambda job_id, lease: checkpoint(repo, job_id, lease, {"d": 1}, 30.0)
    )
    assert [type(a) for a in lower] == [InvalidProgress, InvalidProgress]
    await repo.close()
    return [await _stored(store, job_id) for job_id, _ in jobs]


async def test_batched_and_unbatched_checkpoints_store_the_same(postgres_dsn: str) -> None:
    """With and without progress of their own, with the trailing event of a held report
    riding along (two events in one change), and with a checkpoint refused; two jobs at a
    time, so that the batch statement writes them (a lone checkpoint is sent as the
    unbatched statement)."""
    outcomes = []
    for batched in (True, False):
        async with opened(postgres_dsn, batch_checkpoints=batched) as store:
            outcomes.append(await _checkpoint_story(store))
            if batched:
                batcher = batcher_of(store)
                assert (batcher.flushes, batcher.rounds) == (3, 3)
            else:
                assert store.checkpoint_batcher is None
    assert outcomes[0] == outcomes[1]
    types = [str(e[1]) for e in outcomes[0][0][-1]]
    assert types[-4:] == ["job:progress", "job:progress", "job:checkpoint", "job:checkpoint"]


def _shape(answer: Any) -> Any:
    if isinstance(answer, JobspineError):
        details = {k: v for k, v in (answer.details or {}).items() if k != "job_id"}
        return (type(answer).__name__, answer.code, answer.message, details)
    return "ok"


async def test_errors_in_a_batch_are_each_callers_own_and_the_unbatched_ones(
    postgres_dsn: str,
) -> None:
    shapes = []
    for batched in (True, False):
        async with opened(postgres_dsn, batch_checkpoints=batched) as store:
            repo = repository(store)
            ok, lower, foreign, cancelled = await running(repo, 4)
            await checkpoint(repo, lower[0], lower[1], {"n": 1}, 80.0)
            await repo.cancel(ALICE, cancelled[0])
            answers = await asyncio.gather(
                outcome(checkpoint(repo, ok[0], ok[1], {"n": 2}, 10.0)),
                outcome(checkpoint(repo, lower[0], lower[1], {"n": 3}, 20.0)),
                outcome(checkpoint(repo, foreign[0], "someone-elses-lease", {"n": 4}, None)),
                outcome(checkpoint(repo, cancelled[0], cancelled[1], {"n": 5}, None)),
                outcome(checkpoint(repo, str(uuid.uuid4()), "a-lease", {"n": 6}, None)),
            )
            if batched:
                assert batcher_of(store).flushes == 2  # the setup's checkpoint, then one batch
            assert [type(a) for a in answers[1:]] == [
                InvalidProgress,
                LeaseLost,
                LeaseLost,
                NotFound,
            ]
            assert (answers[3].details or {}).get("state") == "cancelled"
            # Refused checkpoints wrote nothing; the one that applied did.
            assert (await store.get_checkpoint(ok[0])) is not None
            kept = await store.get_checkpoint(lower[0])
            assert kept is not None
            assert kept.data == {"n": 1}
            for job_id in (foreign[0], cancelled[0]):
                assert await store.get_checkpoint(job_id) is None
            shapes.append([_shape(a) for a in answers])
    assert shapes[0] == shapes[1]


async def test_a_job_twice_in_one_batch_is_written_in_arrival_order(postgres_dsn: str) -> None:
    """Two web instances (here two repositories, each with its own per-job lock) may send
    checkpoints of one job at once: both apply, in order, with consecutive seqs."""
    async with opened(postgres_dsn) as store:
        first_repo, second_repo = repository(store), repository(store)
        ((job_id, lease),) = await running(first_repo, 1)
        start = (await first_repo.get_job(ALICE, job_id)).seq

        await asyncio.gather(
            checkpoint(first_repo, job_id, lease, {"first": 1}, 30.0),
            checkpoint(second_repo, job_id, lease, {"second": 2}, 70.0),
        )

        batcher = batcher_of(store)
        assert (batcher.flushes, batcher.rounds) == (1, 2)
        job = await first_repo.get_job(ALICE, job_id)
        assert (job.progress, job.seq) == (70.0, start + 2)
        saved = await store.get_checkpoint(job_id)
        assert saved is not None
        assert saved.data == {"second": 2}
        read = await store.read_stream(job_id, start)
        assert read is not None
        assert [(e.seq, e.data.get("progress")) for e in read.events] == [
            (start + 1, 30.0),
            (start + 2, 70.0),
        ]


async def test_a_batch_forms_behind_a_write_in_flight_and_a_caller_may_give_up(
    postgres_dsn: str,
) -> None:
    """Group commit, no timer: the first checkpoint is written at once (here held up by a
    row lock); the ones arriving meanwhile make up the next batch, written right after. One
    of them gives up before it is written: it is not written, the others are; closing
    writes what has joined, then refuses checkpoints."""
    async with connected(postgres_dsn) as locker, opened(postgres_dsn) as store:
        repo = repository(store)
        jobs = await running(repo, 4)
        batcher = batcher_of(store)
        locked, *behind = jobs
        async with locker.transaction():
            await locker.execute(
                "SELECT 1 FROM jobs WHERE id = $1 FOR UPDATE", uuid.UUID(locked[0])
            )
            blocked = asyncio.ensure_future(checkpoint(repo, *locked, {"n": 0}, 5.0))
            await wait_until(lambda: _true(batcher.flushes == 1))
            calls = [
                asyncio.ensure_future(checkpoint(repo, job_id, lease, {"n": 1}, 6.0))
                for job_id, lease in behind
            ]
            await wait_until(lambda: _true(batcher.waiting == 3))
            calls[1].cancel()
            closing = asyncio.ensure_future(batcher.close())
        await asyncio.wait_for(blocked, 30)
        await asyncio.wait_for(closing, 30)
        assert calls[0].done()
        assert calls[2].done()
        with pytest.raises(asyncio.CancelledError):
            await calls[1]
        assert (batcher.flushes, batcher.rounds) == (2, 2)
        gave_up = await store.get(behind[1][0])
        assert gave_up is not None
        assert gave_up.checkpoint is None
        for job_id, _ in (behind[0], behind[2]):
            assert await store.get_checkpoint(job_id) is not None
        with pytest.raises(Unavailable):
            await checkpoint(repo, *behind[0], {"n": 2}, 7.0)


async def test_a_deadlock_between_writers_is_retried(postgres_dsn: str) -> None:
    """A batch and another writer locking the same jobs in opposite orders deadlock;
    Postgres aborts the batch statement (its deadlock check runs first), which wrote
    nothing, and the batcher runs it again."""
    async with connected(postgres_dsn) as conn:
        database = await conn.fetchval("SELECT current_database()")
        await conn.execute(f"ALTER DATABASE \"{database}\" SET deadlock_timeout = '500ms'")
    async with (
        connected(postgres_dsn) as conn,
        connected(postgres_dsn) as other,
        opened(postgres_dsn) as store,
    ):
        repo = repository(store)
        # Rows in id order, never updated: the batch locks them in its own order either way
        # (a nested loop over its rows, or the table's order under a hash join).
        first, second = await running_jobs(conn, 2)
        await other.execute("SET deadlock_timeout = '60s'")
        touch = "UPDATE jobs SET last_heartbeat_at = now() WHERE id = $1"
        async with other.transaction():
            await other.execute(touch, uuid.UUID(second[0]))
            # The batch locks the first job's row (first in it), then waits for the second.
            calls = [
                asyncio.ensure_future(checkpoint(repo, *first, {"n": 1}, None)),
                asyncio.ensure_future(checkpoint(repo, *second, {"n": 2}, None)),
            ]
            await wait_until(lambda: _lock_waiters(conn))
            await other.execute(touch, uuid.UUID(first[0]))  # a cycle
        await asyncio.wait_for(asyncio.gather(*calls), 30)
        batcher = batcher_of(store)
        assert batcher.deadlock_retries >= 1
        assert batcher.flushes == 1
        for job_id, _ in (first, second):
            assert await store.get_checkpoint(job_id) is not None


async def _lock_waiters(conn: Any) -> int:
    count: int = await conn.fetchval(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    return count


async def _true(value: bool) -> bool:
    return value


async def test_a_batch_is_written_in_statements_of_bounded_size(postgres_dsn: str) -> None:
    """Large checkpoints are not sent as one statement: a batch is cut where its data would
    pass ``max_batch_bytes``; every caller is still answered."""
    async with opened(postgres_dsn) as store:
        repo = repository(store)
        jobs = await running(repo, 3)
        batcher = batcher_of(store)
        data = {"blob": "x" * 100}  # 113 bytes as compact JSON
        batcher.max_batch_bytes = 250

        await asyncio.gather(*(checkpoint(repo, j, lease, data, None) for j, lease in jobs))

        assert (batcher.flushes, batcher.rounds) == (1, 2)  # two, then one
        for job_id, _ in jobs:
            saved = await store.get_checkpoint(job_id)
            assert saved is not None
            assert saved.data == data


def test_only_changes_the_batch_statement_writes_exactly_are_batched() -> None:
    write = CheckpointWrite(data={"k": 1}, size_bytes=7, progress=None, keys=("k",))
    event = EventSpec(type=EventType.CHECKPOINT, data={"size_bytes": 7})
    checkpoint_change = JobChange(
        action="checkpoint",
        lease="a-lease",
        fields={"last_heartbeat_at": NOW},
        checkpoint=write,
        events=(event,),
    )
    assert batchable(checkpoint_change) is write
    computed = EventSpec(type=EventType.CHECKPOINT, data=lambda job: {"seq": job.record.seq})
    others = [
        attrs.evolve(checkpoint_change, events=(computed,)),
        attrs.evolve(checkpoint_change, events=()),
        attrs.evolve(checkpoint_change, checkpoint=None),
        attrs.evolve(checkpoint_change, to_state=S.PAUSED, require_pause_requested=True),
        attrs.evolve(checkpoint_change, fields={"last_heartbeat_at": NOW, "step": "s"}),
        attrs.evolve(checkpoint_change, fields={"progress": 5.0}),
        attrs.evolve(checkpoint_change, audit=AuditWrite(action="a", actor="b")),
    ]
    assert [batchable(change) for change in others] == [None] * len(others)
