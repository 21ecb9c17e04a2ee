"""Publishing after the job's lock (server/service/publishing.py): the next write of a job
does not wait for the previous publish, events still go out in seq order, a caller cancelled
after its events were put does not lose them (nor one cancelled during its progress write,
nor a claim cancelled before it took its job's lock), ``job:started`` never follows a racing
cancel's event, and a change waits only for the claims that may have claimed its job.

The interleavings are driven with events the test opens (a store that holds a call after its
commit, a publisher that holds an emit); every wait has a deadline, none is a sleep.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from jobspine_shared.events import EventType
from jobspine_shared.models import JobEvent
from server.commands.worker import parse_claim, parse_progress
from server.service import JobRepository, RepositorySettings
from server.service.publishing import ClaimsInFlight, PublishLines
from server.store.memory import MemoryJobStore
from server.store.model import ChangeResult, ClaimResult, JobChange
from server.store.progress import ProgressResult, ProgressWrite
from tests.support.jobs import ALICE, WORKER, create, running

WITHIN_S = 5.0


class HeldStore(MemoryJobStore):
    """A memory store that tells of its progress writes and changes, and whose claims (and
    the next change or progress write) can be held after they committed, as a Postgres
    answer still on its way would be."""

    def __init__(self) -> None:
        super().__init__(backlog_size=100)
        self.hold_claims = False
        self.hold_next_change = False
        self.hold_next_progress = False
        self.release = asyncio.Event()
        self.release_change = asyncio.Event()
        self.committed = asyncio.Event()
        self.claim_answered = asyncio.Event()
        self.progress_writes = 0
        self.applied = asyncio.Event()

    async def _apply(self, job_id: str, change: JobChange) -> ChangeResult:
        result = await super()._apply(job_id, change)
        self.applied.set()
        if self.hold_next_change:
            self.hold_next_change = False
            await self.release_change.wait()
        return result

    async def update_progress(self, job_id: str, write: ProgressWrite) -> ProgressResult:
        result = await super().update_progress(job_id, write)
        self.progress_writes += 1
        self.committed.set()
        if self.hold_next_progress:
            self.hold_next_progress = False
            await asyncio.Event().wait()  # (the caller is cancelled here)
        return result

    async def _claim(
        self, types: tuple[str, ...], worker_id: str, lease: str, max_running_per_user: int
    ) -> ClaimResult | None:
        claimed = await super()._claim(types, worker_id, lease, max_running_per_user)
        self.committed.set()
        if self.hold_claims:
            await self.release.wait()
        self.claim_answered.set()
        return claimed


class HeldPublisher:
    """Records every event; while ``holding``, each publish waits for ``release``."""

    def __init__(self) -> None:
        self.events: list[JobEvent] = []
        self.holding = False
        self.release = asyncio.Event()
        self.entered = asyncio.Event()
        self.published = asyncio.Event()

    async def publish(self, events: Sequence[JobEvent]) -> None:
        self.entered.set()
        if self.holding:
            await self.release.wait()
        self.events.extend(events)
        self.published.set()

    async def wait_for(self, job_id: str, event_type: str) -> None:
        """Until an event of ``event_type`` of ``job_id`` was published (a deadline's)."""
        async with asyncio.timeout(WITHIN_S):
            while not any(e.job_id == job_id and e.type == event_type for e in self.events):
                self.published.clear()
                await self.published.wait()


@pytest.fixture
def store() -> HeldStore:
    return HeldStore()


@pytest.fixture
def publisher() -> HeldPublisher:
    return HeldPublisher()


@pytest.fixture
def repo(store: HeldStore, publisher: HeldPublisher) -> JobRepository:
    return JobRepository(store, RepositorySettings(progress_events_per_s=0), publisher=publisher)


async def _report(repo: JobRepository, job_id: str, lease: str, step: str) -> None:
    payload = {"job_id": job_id, "lease": lease, "progress": 50.0, "step": step}
    await repo.update_progress(parse_progress(payload))


def steps(publisher: HeldPublisher, job_id: str) -> list[object]:
    return [e.data.get("step") for e in publisher.events if e.job_id == job_id]


def seqs(publisher: HeldPublisher, job_id: str) -> list[int]:
    return [e.seq for e in publisher.events if e.job_id == job_id]


async def test_the_next_write_of_a_job_runs_while_its_previous_event_is_published(
    repo: JobRepository, store: HeldStore, publisher: HeldPublisher
) -> None:
    job_id, lease = await running(repo)
    before = len(publisher.events)
    publisher.holding, publisher.entered = True, asyncio.Event()
    first = asyncio.create_task(_report(repo, job_id, lease, "a"))
    async with asyncio.timeout(WITHIN_S):
        await publisher.entered.wait()  # the first event is being published, and held
    writes = store.progress_writes
    second = asyncio.create_task(_report(repo, job_id, lease, "b"))
    third = asyncio.create_task(_report(repo, job_id, lease, "c"))
    async with asyncio.timeout(WITHIN_S):
        while store.progress_writes < writes + 2:  # both written meanwhile (not behind a lock)
            store.committed.clear()
            await store.committed.wait()
    assert not first.done()
    assert not second.done()
    assert not third.done()
    publisher.release.set()
    async with asyncio.timeout(WITHIN_S):
        await asyncio.gather(first, second, third)
    published = publisher.events[before:]
    assert [e.data.get("step") for e in published] == ["a", "b", "c"]
    assert [e.seq for e in published] == list(range(published[0].seq, published[0].seq + 3))


async def test_a_caller_cancelled_while_its_event_waits_for_its_turn_leaves_it_published(
    repo: JobRepository, store: HeldStore, publisher: HeldPublisher
) -> None:
    job_id, lease = await running(repo)
    before = len(publisher.events)
    publisher.holding, publisher.entered = True, asyncio.Event()
    first = asyncio.create_task(_report(repo, job_id, lease, "first"))
    async with asyncio.timeout(WITHIN_S):
        await publisher.entered.wait()
    writes = store.progress_writes
    store.committed.clear()
    gone = asyncio.create_task(_report(repo, job_id, lease, "gone"))
    async with asyncio.timeout(WITHIN_S):
        await store.committed.wait()  # stored and put; it waits for the first's publish
    assert store.progress_writes == writes + 1
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    publisher.release.set()
    async with asyncio.timeout(WITHIN_S):
        await first
        await repo.close()  # waits for what the cancelled caller left
    assert [e.data.get("step") for e in publisher.events[before:]] == ["first", "gone"]
    stored = await store.get(job_id)
    assert stored is not None
    assert stored.record.seq == seqs(publisher, job_id)[-1]


async def test_close_waits_for_the_publish_a_cancelled_caller_left(
    repo: JobRepository, publisher: HeldPublisher
) -> None:
    job_id, lease = await running(repo)
    publisher.holding, publisher.entered = True, asyncio.Event()
    caller = asyncio.create_task(_report(repo, job_id, lease, "late"))
    async with asyncio.timeout(WITHIN_S):
        await publisher.entered.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    closing = asyncio.create_task(repo.close())
    await asyncio.sleep(0)  # (one loop turn, not a wait for time: close must not be done)
    assert not closing.done()
    publisher.release.set()
    async with asyncio.timeout(WITHIN_S):
        await closing
    assert steps(publisher, job_id)[-1] == "late"


async def test_started_is_published_before_the_event_of_a_cancel_that_raced_the_claim(
    repo: JobRepository, store: HeldStore, publisher: HeldPublisher
) -> None:
    job = await create(repo)
    store.hold_claims, store.committed = True, asyncio.Event()
    claiming = asyncio.create_task(
        repo.claim(parse_claim({"types": None}, default_worker_id=WORKER.id))
    )
    async with asyncio.timeout(WITHIN_S):
        await store.committed.wait()  # the claim committed; its answer is held
    store.applied.clear()
    cancelling = asyncio.create_task(repo.cancel(ALICE, job.id))
    async with asyncio.timeout(WITHIN_S):
        await store.applied.wait()  # the cancel committed, after the claim
    stored = await store.get(job.id)
    assert stored is not None
    assert str(stored.record.state) == "cancelled"
    store.release.set()
    async with asyncio.timeout(WITHIN_S):
        claimed, _ = await asyncio.gather(claiming, cancelling)
    assert claimed is not None
    types = [str(e.type) for e in publisher.events if e.job_id == job.id]
    assert types == ["job:created", "job:started", "job:cancelled"]
    assert seqs(publisher, job.id) == [1, 2, 3]


async def test_a_report_cancelled_during_its_store_write_still_reaches_live_clients(
    repo: JobRepository, store: HeldStore, publisher: HeldPublisher
) -> None:
    job_id, lease = await running(repo)
    store.hold_next_progress, store.committed = True, asyncio.Event()
    caller = asyncio.create_task(_report(repo, job_id, lease, "cut"))
    async with asyncio.timeout(WITHIN_S):
        await store.committed.wait()  # stored with its event; the answer never comes
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    async with asyncio.timeout(WITHIN_S):
        while "cut" not in steps(publisher, job_id):  # live, without a close or a replay
            publisher.published.clear()
            await publisher.published.wait()
    stored = await store.read_stream(job_id, 0)
    assert stored is not None
    # The event the write stored stays in the backlog; the next one carries the same
    # value live, so a client sees it at once (and fills the seq it skipped by replay).
    progress = [e for e in stored.events if e.type == EventType.PROGRESS]
    assert [e.data["step"] for e in progress] == ["cut", "cut"]
    assert stored.job.record.seq == seqs(publisher, job_id)[-1]
    assert stored.job.record.step == "cut"
    await repo.close()


async def test_a_claim_cancelled_while_waiting_for_its_jobs_lock_still_publishes_started(
    repo: JobRepository, store: HeldStore, publisher: HeldPublisher
) -> None:
    job = await create(repo)
    store.hold_claims, store.committed = True, asyncio.Event()
    claiming = asyncio.create_task(
        repo.claim(parse_claim({"types": None}, default_worker_id=WORKER.id))
    )
    async with asyncio.timeout(WITHIN_S):
        await store.committed.wait()  # the claim committed; its answer is held
    store.hold_next_change, store.applied = True, asyncio.Event()
    cancelling = asyncio.create_task(repo.cancel(ALICE, job.id))
    async with asyncio.timeout(WITHIN_S):
        await store.applied.wait()  # the cancel committed and holds the job's lock
    store.release.set()
    async with asyncio.timeout(WITHIN_S):
        # Answered: in the same step the claim went on to wait for the job's lock.
        await store.claim_answered.wait()
    assert not claiming.done()
    claiming.cancel()
    with pytest.raises(asyncio.CancelledError):
        await claiming
    store.release_change.set()
    async with asyncio.timeout(WITHIN_S):
        await cancelling
        await repo.close()
    types = [str(e.type) for e in publisher.events if e.job_id == job.id]
    assert types == ["job:created", "job:started", "job:cancelled"]
    assert seqs(publisher, job.id) == [1, 2, 3]


async def test_a_change_of_a_job_not_running_does_not_wait_for_claims_in_flight(
    repo: JobRepository, store: HeldStore, publisher: HeldPublisher
) -> None:
    claimable = await create(repo)
    other = await create(repo, type="analysis")
    store.hold_claims, store.committed = True, asyncio.Event()
    claiming = asyncio.create_task(
        repo.claim(parse_claim({"types": ["research"]}, default_worker_id=WORKER.id))
    )
    async with asyncio.timeout(WITHIN_S):
        await store.committed.wait()  # a slow claim (of the other job) in flight
    async with asyncio.timeout(WITHIN_S):
        cancelled = await repo.cancel(ALICE, other.id)
    assert str(cancelled.state) == "cancelled"
    assert "job:cancelled" in [str(e.type) for e in publisher.events if e.job_id == other.id]
    assert not claiming.done()
    store.release.set()
    async with asyncio.timeout(WITHIN_S):
        claimed = await claiming
    assert claimed is not None
    assert claimed.job.id == claimable.id


async def test_a_cancel_of_a_running_job_does_not_wait_for_a_claim_of_another_job(
    repo: JobRepository, store: HeldStore, publisher: HeldPublisher
) -> None:
    job_id, _ = await running(repo)
    other = await create(repo)
    store.hold_claims, store.committed = True, asyncio.Event()
    claiming = asyncio.create_task(
        repo.claim(parse_claim({"types": None}, default_worker_id=WORKER.id))
    )
    async with asyncio.timeout(WITHIN_S):
        await store.committed.wait()  # the other job claimed; the answer is held
    store.hold_next_change, store.applied = True, asyncio.Event()
    racing = asyncio.create_task(repo.cancel(ALICE, other.id))
    async with asyncio.timeout(WITHIN_S):
        await store.applied.wait()  # a cancel of it committed and holds its lock
    store.release.set()
    async with asyncio.timeout(WITHIN_S):
        await store.claim_answered.wait()  # the claim waits for the other job's lock
    async with asyncio.timeout(WITHIN_S):
        cancelled = await repo.cancel(ALICE, job_id)
    assert str(cancelled.state) == "cancelled"
    assert "job:cancelled" in [str(e.type) for e in publisher.events if e.job_id == job_id]
    assert not claiming.done()
    store.release_change.set()
    async with asyncio.timeout(WITHIN_S):
        claimed, _ = await asyncio.gather(claiming, racing)
    assert claimed is not None
    assert claimed.job.id == other.id
    types = [str(e.type) for e in publisher.events if e.job_id == other.id]
    assert types == ["job:created", "job:started", "job:cancelled"]


# -- the parts ------------------------------------------------------------------------------


async def test_a_barrier_waits_for_the_claims_in_flight_when_it_was_taken_only() -> None:
    claims = ClaimsInFlight()
    assert claims.barrier("j") is None
    first, second = claims.start(), claims.start()
    barrier = claims.barrier("j")
    assert barrier is not None
    later = claims.start()  # after the barrier: not waited for
    claims.finish(second)
    assert not barrier.done()
    claims.finish(first)
    claims.finish(first)  # twice is fine
    assert barrier.done()
    assert len(claims) == 1
    claims.finish(later)
    assert len(claims) == 0


async def test_a_barrier_does_not_wait_for_claims_that_answered_with_another_job() -> None:
    claims = ClaimsInFlight()
    theirs, mine, unknown = claims.start(), claims.start(), claims.start()
    claims.claimed(theirs, "other")
    claims.claimed(mine, "j")
    barrier = claims.barrier("j")
    assert barrier is not None
    claims.finish(mine)
    assert not barrier.done()  # the claim still in its store call may have claimed "j"
    claims.claimed(unknown, "another")
    assert barrier.done()
    assert theirs in claims
    assert claims.barrier("j") is None


def _event(seq: int) -> JobEvent:
    at = datetime(2026, 12, 7, tzinfo=UTC)
    return JobEvent(job_id="j", user_id="u", seq=seq, epoch="e", type=EventType.PROGRESS, at=at)


async def test_a_batch_put_late_goes_before_waiting_batches_of_higher_seqs() -> None:
    out: list[int] = []

    async def publish(events: Sequence[JobEvent], note: None) -> None:
        out.extend(e.seq for e in events)

    lines: PublishLines[None] = PublishLines(publish)
    ready = asyncio.get_running_loop().create_future()
    put = asyncio.Event()

    async def cancel_like() -> None:
        lines.put("j", [_event(3)], None, ready=ready)
        put.set()
        await lines.publish_own("j")

    async def claim_like() -> None:
        lines.put("j", [_event(2)], None)
        await lines.publish_own("j")

    waiting = asyncio.create_task(cancel_like())
    async with asyncio.timeout(WITHIN_S):
        await put.wait()  # the batch of seq 3 is in the line, waiting for its claims
    await claim_like()
    ready.set_result(None)
    async with asyncio.timeout(WITHIN_S):
        await waiting
    assert out == [2, 3]
    assert lines.pending() == 0
