"""Publishing after the job's lock (server/service/publishing.py): the next write of a job
does not wait for the previous publish, events still go out in seq order, a caller cancelled
after its events were put does not lose them, and ``job:started`` never follows a racing
cancel's event.

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
from server.store.progress import ProgressWrite
from tests.support.jobs import ALICE, WORKER, create, running

WITHIN_S = 5.0


class HeldStore(MemoryJobStore):
    """A memory store that tells of its progress writes and changes, and whose claims can
    be held after they committed, as a Postgres answer still on its way would be."""

    def __init__(self) -> None:
        super().__init__(backlog_size=100)
        self.hold_claims = False
        self.release = asyncio.Event()
        self.committed = asyncio.Event()
        self.progress_writes = 0
        self.applied = asyncio.Event()

    async def _apply(self, job_id: str, change: JobChange) -> ChangeResult:
        result = await super()._apply(job_id, change)
        self.applied.set()
        return result

    async def update_progress(self, job_id: str, write: ProgressWrite) -> ChangeResult:
        result = await super().update_progress(job_id, write)
        self.progress_writes += 1
        self.committed.set()
        return result

    async def _claim(
        self, types: tuple[str, ...], worker_id: str, lease: str, max_running_per_user: int
    ) -> ClaimResult | None:
        claimed = await super()._claim(types, worker_id, lease, max_running_per_user)
        self.committed.set()
        if self.hold_claims:
            await self.release.wait()
        return claimed


class HeldPublisher:
    """Records every event; while ``holding``, each publish waits for ``release``."""

    def __init__(self) -> None:
        self.events: list[JobEvent] = []
        self.holding = False
        self.release = asyncio.Event()
        self.entered = asyncio.Event()

    async def publish(self, events: Sequence[JobEvent]) -> None:
        self.entered.set()
        if self.holding:
            await self.release.wait()
        self.events.extend(events)


@pytest.fixture
def store() -> HeldStore:
    return HeldStore()


@pytest.fixture
def publisher() -> HeldPublisher:
    return HeldPublisher()


@pytest.fixture
def repo(store: HeldStore, publisher: HeldPublisher) -> JobRepository:
    return JobRepository(store, RepositorySettings(progress_events_per_s=0), publisher=publisher)


async def _report(repo: JobRepository, job_id: str, lease: str, step: str) -> object:
    payload = {"job_id": job_id, "lease": lease, "progress": 50.0, "step": step}
    return await repo.update_progress(parse_progress(payload))


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


# -- the parts ------------------------------------------------------------------------------


async def test_a_barrier_waits_for_the_claims_in_flight_when_it_was_taken_only() -> None:
    claims = ClaimsInFlight()
    assert claims.barrier() is None
    first, second = claims.start(), claims.start()
    barrier = claims.barrier()
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
