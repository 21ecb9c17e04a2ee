"""The memory store's claim index (``server/store/memory_claims.py``) agrees with a scan of
every job after each kind of change, and claims take jobs in claim order from it."""

from __future__ import annotations

import collections

from jobspine_shared.states import JobState
from server.commands.create import parse_create
from server.commands.user import parse_restart
from server.commands.worker import parse_claim
from server.service import JobRepository, RepositorySettings
from server.store.memory import MemoryJobStore
from server.store.rules import claim_order
from tests.support.jobs import ALICE, BOB, WORKER, drive


def _assert_index_matches_a_scan(store: MemoryJobStore) -> None:
    # The index's own fields against the jobs (what a claim used to compute on each call).
    records = [slot.job.record for slot in store._slots.values()]
    created = sorted(claim_order(r) for r in records if r.state is JobState.CREATED)
    running = collections.Counter(r.user_id for r in records if r.state is JobState.RUNNING)
    assert store._claims._created == created
    assert store._claims._running == running


async def test_the_index_follows_every_change() -> None:
    store = MemoryJobStore(backlog_size=10)
    repo = JobRepository(store, RepositorySettings(progress_events_per_s=0))
    driven = {
        (owner.id, state): await drive(repo, state, owner)
        for owner in (ALICE, BOB)
        for state in JobState
        if state is not JobState.CREATED
    }
    _assert_index_matches_a_scan(store)
    for (owner_id, state), job in driven.items():
        owner = ALICE if owner_id == ALICE.id else BOB
        if state is JobState.PAUSED:
            await repo.resume(owner, job.job.id)
        elif state is JobState.FAILED:
            await repo.restart(owner, parse_restart({"job_id": job.job.id}))
        elif state is JobState.COMPLETED:
            await repo.delete_job(owner, job.job.id)
        elif state is JobState.RUNNING:
            await repo.cancel(owner, job.job.id)
        _assert_index_matches_a_scan(store)


async def test_claims_take_the_first_in_claim_order_under_the_running_cap() -> None:
    store = MemoryJobStore(backlog_size=10)
    repo = JobRepository(store, RepositorySettings(max_running_per_user=2))
    ids = {}
    for n, (owner, priority) in enumerate([(ALICE, 0), (BOB, 5), (ALICE, 9), (ALICE, 5)]):
        payload = {"type": "research", "input": {"n": n}, "priority": priority}
        ids[n] = (await repo.create(owner, parse_create(payload))).job.id
    claimed = []
    while (found := await repo.claim(parse_claim({}, default_worker_id=WORKER.id))) is not None:
        claimed.append(found.job.id)
        _assert_index_matches_a_scan(store)
    # Priority first; Alice's third job waits for one of her two running ones to end.
    assert claimed == [ids[2], ids[1], ids[3]]
