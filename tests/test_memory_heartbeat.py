"""The memory store notes a heartbeat's time and folds it into the job when the job is next
read (``server.store.memory._Slot``): every read sees it, and no change loses it."""

from __future__ import annotations

import pytest

from jobspine_shared.states import JobState
from server.commands.worker import parse_heartbeat
from server.errors import LeaseLost
from server.service import JobRepository, RepositorySettings
from server.store.memory import MemoryJobStore
from tests.support.jobs import ALICE, drive
from tests.support.staleness import ManualClock as Clock


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def repo(clock: Clock) -> JobRepository:
    store = MemoryJobStore(backlog_size=10, clock=clock)
    return JobRepository(store, RepositorySettings(heartbeat_timeout_s=30.0))


async def test_every_read_sees_the_latest_heartbeat(repo: JobRepository, clock: Clock) -> None:
    driven = await drive(repo, JobState.RUNNING)
    assert driven.lease is not None
    for seconds in (5, 7):
        beat_at = clock.advance(seconds)
        assert (
            await repo.heartbeat(parse_heartbeat({"job_id": driven.job.id, "lease": driven.lease}))
            is False
        )
        clock.advance(1)  # reads happen later than the heartbeat they show

        stored = await repo.store.get(driven.job.id)
        assert stored is not None
        assert stored.record.last_heartbeat_at == beat_at
        stream = await repo.store.read_stream(driven.job.id, 0)
        assert stream is not None
        assert stream.job.record.last_heartbeat_at == beat_at
        page = await repo.list_jobs(ALICE)
        assert [job.last_heartbeat_at for job in page.items] == [beat_at]


async def test_a_change_after_a_heartbeat_keeps_it(repo: JobRepository, clock: Clock) -> None:
    driven = await drive(repo, JobState.RUNNING)
    assert driven.lease is not None
    beat_at = clock.advance(5)
    await repo.heartbeat(parse_heartbeat({"job_id": driven.job.id, "lease": driven.lease}))
    clock.advance(1)

    paused = await repo.pause(ALICE, driven.job.id)  # asks the worker; heartbeat untouched

    assert paused.pause_requested is True
    assert paused.last_heartbeat_at == beat_at
    clock.advance(1)
    assert (
        await repo.heartbeat(parse_heartbeat({"job_id": driven.job.id, "lease": driven.lease}))
        is True
    )  # the request shows


async def test_the_stale_scan_sees_heartbeats_not_yet_read(
    repo: JobRepository, clock: Clock
) -> None:
    beating = await drive(repo, JobState.RUNNING)
    silent = await drive(repo, JobState.RUNNING)
    assert beating.lease is not None
    clock.advance(25)
    await repo.heartbeat(parse_heartbeat({"job_id": beating.job.id, "lease": beating.lease}))
    clock.advance(10)  # silent: 35 s without a heartbeat; beating: 10 s

    stale = await repo.find_stale_jobs()

    assert [job.record.id for job in stale] == [silent.job.id]


async def test_a_wrong_lease_is_refused_with_a_heartbeat_pending(
    repo: JobRepository, clock: Clock
) -> None:
    driven = await drive(repo, JobState.RUNNING)
    assert driven.lease is not None
    beat_at = clock.advance(5)
    await repo.heartbeat(parse_heartbeat({"job_id": driven.job.id, "lease": driven.lease}))

    with pytest.raises(LeaseLost):
        await repo.heartbeat(parse_heartbeat({"job_id": driven.job.id, "lease": "someone-else"}))

    stored = await repo.store.get(driven.job.id)
    assert stored is not None
    assert stored.record.last_heartbeat_at == beat_at
    assert stored.record.state is JobState.RUNNING
