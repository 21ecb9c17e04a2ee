"""The supervisor's lifecycle v2 duties on a memory store whose time moves only when the
test moves it: attempts past ``timeout_s`` are retried or failed (once, whoever ticks), the
lease holder is told, delayed jobs that became due wake idle workers; and the retention
sweeper deletes old final jobs in bounded batches."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from jobspine_shared.states import JobState
from server.commands.create import parse_create
from server.commands.worker import parse_claim
from server.retention import RetentionSweeper
from server.service import JobRepository, RepositorySettings
from server.store.memory import MemoryJobStore
from server.supervisor import Supervisor
from tests.support.jobs import ALICE, WORKER
from tests.support.staleness import ManualClock

S = JobState


class Signals:
    def __init__(self) -> None:
        self.available: list[list[str]] = []
        self.revoked: list[tuple[str, str, str]] = []
        self.pauses: list[str] = []

    async def jobs_available(self, types: Sequence[str]) -> None:
        self.available.append(list(types))

    async def lease_revoked(self, job_id: str, *, state: str, reason: str) -> None:
        self.revoked.append((job_id, state, reason))

    async def pause_requested(self, job_id: str) -> None:
        self.pauses.append(job_id)


def clocked() -> tuple[JobRepository, ManualClock, Signals]:
    clock = ManualClock()
    repo = JobRepository(
        MemoryJobStore(backlog_size=50, clock=clock),
        RepositorySettings(heartbeat_timeout_s=3600, progress_events_per_s=0),
    )
    signals = Signals()
    repo.set_worker_signals(signals)
    return repo, clock, signals


async def test_a_timed_out_attempt_is_retried_then_failed_once_per_supervisor() -> None:
    repo, clock, signals = clocked()
    payload = {"type": "research", "timeout_s": 30, "retry": {"max_attempts": 2, "backoff_s": 5}}
    job = (await repo.create(ALICE, parse_create(payload))).job
    first, second = Supervisor(repo, interval_s=1), Supervisor(repo, interval_s=1)
    assert await repo.claim(parse_claim({}, default_worker_id=WORKER.id)) is not None
    clock.advance(29)
    assert (await first.tick()).timed_out == 0
    clock.advance(2)
    assert (await first.tick()).timed_out == 1
    assert (await second.tick()).timed_out == 0  # already retried: acts once
    retried = await repo.get_job(ALICE, job.id)
    assert retried.state is S.CREATED
    assert retried.retries == 1
    assert retried.error is not None
    assert retried.error.code == "timeout"
    assert signals.revoked == [(job.id, "created", "timeout")]
    assert (
        await repo.claim(parse_claim({}, default_worker_id=WORKER.id)) is None
    )  # backoff: run_at is 5 s away
    clock.advance(5)
    await first.tick()
    assert ["research"] in signals.available  # the delayed retry became due
    assert await repo.claim(parse_claim({}, default_worker_id=WORKER.id)) is not None
    clock.advance(31)
    await second.tick()
    failed = await repo.get_job(ALICE, job.id)
    assert failed.state is S.FAILED
    assert first.status.timed_out + second.status.timed_out == 2


async def test_a_delayed_job_is_announced_when_its_run_at_comes() -> None:
    repo, clock, signals = clocked()
    run_at = clock.now + timedelta(seconds=60)
    await repo.create(ALICE, parse_create({"type": "trade", "run_at": run_at.isoformat()}))
    supervisor = Supervisor(repo, interval_s=1)
    await supervisor.tick()
    assert signals.available == []
    clock.advance(61)
    await supervisor.tick()
    assert signals.available == [["trade"]]


async def test_the_retention_sweeper_deletes_in_batches_and_counts() -> None:
    repo, clock, _ = clocked()
    for _ in range(3):
        job = (await repo.create(ALICE, parse_create({"type": "research"}))).job
        await repo.cancel(ALICE, job.id)
    kept = (await repo.create(ALICE, parse_create({"type": "research"}))).job
    counted: list[int] = []
    sweeper = RetentionSweeper(repo, retention_s=100, on_deleted=counted.append)
    assert await sweeper.tick() == 0
    clock.advance(101)
    assert await sweeper.tick() == 3
    assert counted == [3]
    assert [j.id for j in (await repo.list_jobs(ALICE)).items] == [kept.id]
