"""Supervisor and recovery on every store: stale jobs are paused or failed, exactly once.

Nothing here waits for a heartbeat to time out: the timeout is a minute, and a test makes a
job stale by ageing its heartbeat (:mod:`tests.support.staleness`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from jobspine_shared.states import JobState
from server.commands.user import parse_read_stream
from server.commands.worker import parse_checkpoint, parse_claim, parse_heartbeat, parse_progress
from server.errors import LeaseLost, Unavailable
from server.recovery import recovery_options_to_wire
from server.service import JobRepository, RepositorySettings
from server.store.base import JobStore
from server.store.model import StoredJob
from server.supervisor import Supervisor
from server.tasks import start_task, stop_task
from tests.support.jobs import ALICE, WORKER, drive, wait_until
from tests.support.server import TEST_BACKLOG
from tests.support.staleness import HeartbeatAging, aging_store

S = JobState
TIMEOUT_S = 60.0
SETTINGS = RepositorySettings(heartbeat_timeout_s=TIMEOUT_S, max_recovery_attempts=2)


@pytest.fixture
async def aged(
    request: pytest.FixtureRequest, store_kind: str
) -> AsyncIterator[tuple[JobStore, HeartbeatAging]]:
    async with aging_store(store_kind, request) as opened:
        yield opened


@pytest.fixture
def store(aged: tuple[JobStore, HeartbeatAging]) -> JobStore:
    """The conftest's store, the memory one on a manual clock."""
    return aged[0]


@pytest.fixture
def aging(aged: tuple[JobStore, HeartbeatAging]) -> HeartbeatAging:
    return aged[1]


@pytest.fixture
def repo(store: JobStore) -> JobRepository:
    return JobRepository(store, SETTINGS)


@pytest.fixture
async def other_repo(
    request: pytest.FixtureRequest, store: JobStore, store_kind: str
) -> AsyncIterator[JobRepository]:
    """A second repository over the same data, as a second web process would have."""
    if store_kind == "memory":
        yield JobRepository(store, SETTINGS)
        return
    from tests.support.postgres import open_postgres_store

    second = await open_postgres_store(
        request.getfixturevalue("postgres_dsn"), backlog_size=TEST_BACKLOG
    )
    try:
        yield JobRepository(second, SETTINGS)
    finally:
        await second.close()


async def made_stale(repo: JobRepository, aging: HeartbeatAging, job_id: str) -> StoredJob:
    """``job_id`` after its heartbeat has aged past the timeout, as the supervisor finds it."""
    await aging.age(job_id, TIMEOUT_S + 1)
    found = [j for j in await repo.find_stale_jobs() if j.record.id == job_id]
    assert found, f"job {job_id} is not stale"
    return found[0]


async def running_with_checkpoint(repo: JobRepository) -> tuple[str, str]:
    driven = await drive(repo, S.RUNNING)
    assert driven.lease
    await repo.checkpoint(
        parse_checkpoint(
            {
                "job_id": driven.job.id,
                "lease": driven.lease,
                "data": {"completed_steps": 2},
                "progress": 40,
            }
        )
    )
    return driven.job.id, driven.lease


async def test_stale_job_with_checkpoint_is_paused_with_recovery_options(
    repo: JobRepository, aging: HeartbeatAging
) -> None:
    job_id, lease = await running_with_checkpoint(repo)
    before = await repo.get_job(ALICE, job_id)
    await made_stale(repo, aging, job_id)
    report = await Supervisor(repo, interval_s=1).tick()
    assert (report.paused, report.failed) == (1, 0)
    job = await repo.get_job(ALICE, job_id)
    assert job.state is S.PAUSED
    assert job.recovery_attempts == 1
    assert job.has_checkpoint is True
    events = (
        await repo.replay(ALICE, parse_read_stream({"job_id": job_id, "after_seq": before.seq}))
    ).events
    assert [str(e.type) for e in events] == ["job:paused", "job:recovery"]
    assert events[0].data == {"reason": "stalled"}
    options = events[1].data
    assert options == recovery_options_to_wire(await repo.recovery_options(ALICE, job_id))
    assert options["resumable"] is True
    assert options["checkpoint"]["present"] is True
    assert options["checkpoint"]["keys"] == ["completed_steps"]
    assert options["checkpoint"]["progress"] == 40
    assert (options["recovery_attempts"], options["max_recovery_attempts"]) == (1, 2)
    with pytest.raises(LeaseLost) as lost:
        await repo.update_progress(
            parse_progress({"job_id": job_id, "lease": lease, "progress": 50})
        )
    assert lost.value.details is not None
    assert lost.value.details["state"] == "paused"


async def test_a_heartbeat_younger_than_the_timeout_is_not_stale(
    repo: JobRepository, aging: HeartbeatAging
) -> None:
    job_id, _ = await running_with_checkpoint(repo)
    await aging.age(job_id, TIMEOUT_S - 1)
    assert all(j.record.id != job_id for j in await repo.find_stale_jobs())
    report = await Supervisor(repo, interval_s=1).tick()
    assert (report.paused, report.failed) == (0, 0)
    assert (await repo.get_job(ALICE, job_id)).state is S.RUNNING


async def test_stale_job_without_checkpoint_fails_worker_lost(
    repo: JobRepository, aging: HeartbeatAging
) -> None:
    driven = await drive(repo, S.RUNNING)
    await made_stale(repo, aging, driven.job.id)
    report = await Supervisor(repo, interval_s=1).tick()
    assert (report.paused, report.failed) == (0, 1)
    job = await repo.get_job(ALICE, driven.job.id)
    assert job.state is S.FAILED
    assert job.error is not None
    assert job.error.code == "worker_lost"
    assert job.recovery_attempts == 0


async def test_recoveries_run_out(repo: JobRepository, aging: HeartbeatAging) -> None:
    job_id, _ = await running_with_checkpoint(repo)
    supervisor = Supervisor(repo, interval_s=1)
    for attempt in (1, 2):
        await made_stale(repo, aging, job_id)
        await supervisor.tick()
        paused = await repo.get_job(ALICE, job_id)
        assert (paused.state, paused.recovery_attempts) == (S.PAUSED, attempt)
        await repo.resume(ALICE, job_id)
        claimed = await repo.claim(parse_claim({}, default_worker_id=WORKER.id))
        assert claimed is not None
        assert claimed.checkpoint == {"completed_steps": 2}
    await made_stale(repo, aging, job_id)
    await supervisor.tick()
    job = await repo.get_job(ALICE, job_id)
    assert job.state is S.FAILED
    assert job.error is not None
    assert job.error.code == "max_recovery_attempts"
    assert job.recovery_attempts == 2
    assert supervisor.status.paused == 2
    assert supervisor.status.failed == 1


async def test_a_heartbeat_that_lands_during_the_scan_wins(
    repo: JobRepository, aging: HeartbeatAging
) -> None:
    job_id, lease = await running_with_checkpoint(repo)
    stale = await made_stale(repo, aging, job_id)
    assert await repo.heartbeat(parse_heartbeat({"job_id": job_id, "lease": lease})) is False
    assert await repo.recover_stale_job(stale) is None
    job = await repo.get_job(ALICE, job_id)
    assert job.state is S.RUNNING
    await repo.update_progress(parse_progress({"job_id": job_id, "lease": lease, "progress": 45}))


async def test_a_reclaimed_job_is_not_recovered_under_the_old_lease(
    repo: JobRepository, aging: HeartbeatAging
) -> None:
    job_id, _ = await running_with_checkpoint(repo)
    stale = await made_stale(repo, aging, job_id)
    await repo.cancel(ALICE, job_id)
    assert await repo.recover_stale_job(stale) is None
    assert (await repo.get_job(ALICE, job_id)).state is S.CANCELLED


async def test_two_supervisors_recover_a_job_once(
    repo: JobRepository, other_repo: JobRepository, aging: HeartbeatAging
) -> None:
    job_id, _ = await running_with_checkpoint(repo)
    before = await repo.get_job(ALICE, job_id)
    await made_stale(repo, aging, job_id)
    first, second = Supervisor(repo, interval_s=1), Supervisor(other_repo, interval_s=1)
    reports = await asyncio.gather(first.tick(), second.tick(), first.tick(), second.tick())
    assert sum(r.paused for r in reports) == 1
    job = await repo.get_job(ALICE, job_id)
    assert (job.state, job.recovery_attempts, job.seq) == (S.PAUSED, 1, before.seq + 2)
    events = (
        await repo.replay(ALICE, parse_read_stream({"job_id": job_id, "after_seq": before.seq}))
    ).events
    assert [str(e.type) for e in events] == ["job:paused", "job:recovery"]


async def test_a_store_error_in_one_tick_does_not_stop_later_ticks(
    repo: JobRepository, store: JobStore, aging: HeartbeatAging, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id, _ = await running_with_checkpoint(repo)
    await aging.age(job_id, TIMEOUT_S + 1)
    real_find_stale = store.find_stale
    calls = 0

    async def flaky_find_stale(stale_after_s: float, *, limit: int) -> list[StoredJob]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise Unavailable()
        return await real_find_stale(stale_after_s, limit=limit)

    monkeypatch.setattr(store, "find_stale", flaky_find_stale)
    supervisor = Supervisor(repo, interval_s=0.01)
    task = start_task(supervisor.run(), name="supervisor")
    try:

        async def paused() -> bool:
            return (await repo.get_job(ALICE, job_id)).state is S.PAUSED

        await wait_until(paused)
    finally:
        await stop_task(task)
    assert task.cancelled()
    assert supervisor.status.errors >= 1
    assert (
        supervisor.status.last_error
        == "Unavailable: The job store is unavailable; try again shortly."
    )
    assert supervisor.status.paused == 1
    assert supervisor.status.running is False


async def test_admin_check_recovers_one_stale_job(
    repo: JobRepository, aging: HeartbeatAging
) -> None:
    from server.errors import Forbidden
    from tests.support.jobs import ADMIN

    job_id, _ = await running_with_checkpoint(repo)
    with pytest.raises(Forbidden):
        await repo.check_job(ALICE, job_id)
    await made_stale(repo, aging, job_id)
    check = await repo.check_job(ADMIN, job_id)
    assert check.recovered is True
    assert check.job.state is S.PAUSED
    again = await repo.check_job(ADMIN, job_id)
    assert (again.recovered, again.job.seq) == (False, check.job.seq)
