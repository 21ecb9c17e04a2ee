"""The store contract, lifecycle v2: one test per rule, on both stores (the ``store``
fixture), driven through the repository: claim order, ``run_at``, the fairness cap,
timeouts, retries with backoff and attempts, idempotent create (and its race), delete,
retention batches, and the v2 list filters."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jobspine_shared.models import JobEvent
from jobspine_shared.states import JobState
from jobspine_shared.wire import parse_time
from server.commands.create import parse_create
from server.commands.user import parse_list, parse_read_stream
from server.commands.worker import parse_checkpoint, parse_claim, parse_complete, parse_fail
from server.errors import Conflict, InvalidTransition, NotFound, ValidationFailed
from server.service import JobRepository, RepositorySettings
from server.store.base import JobStore
from tests.support.jobs import ADMIN, ALICE, BOB, WORKER, claim, wait_until

S = JobState


class Recorder:
    """Every published event, in order (the test backlog keeps only a few)."""

    def __init__(self) -> None:
        self.events: list[JobEvent] = []

    async def publish(self, events: Sequence[JobEvent]) -> None:
        self.events.extend(events)


def repo_with(store: JobStore, **settings: Any) -> JobRepository:
    return JobRepository(
        store, RepositorySettings(progress_events_per_s=0, **settings), publisher=Recorder()
    )


def published(repo: JobRepository, job_id: str) -> list[JobEvent]:
    recorder = repo._publisher
    assert isinstance(recorder, Recorder)
    return [e for e in recorder.events if e.job_id == job_id]


@pytest.fixture
def repo(store: JobStore) -> JobRepository:
    return repo_with(store)


async def make(repo: JobRepository, owner: Any = ALICE, **fields: Any) -> Any:
    payload = {"type": "research", "input": {"q": 1}} | fields
    return (await repo.create(owner, parse_create(payload))).job


async def claim_id(repo: JobRepository, types: list[str] | None = None) -> str | None:
    claimed = await repo.claim(parse_claim({"types": types}, default_worker_id=WORKER.id))
    return None if claimed is None else claimed.job.id


async def claimed_with_checkpoint(
    repo: JobRepository, job_id: str, *, completed_steps: int, progress: float
) -> str:
    """Claims ``job_id`` and checkpoints ``completed_steps`` at ``progress``; the lease."""
    lease = await claim(repo, job_id)
    data = {"completed_steps": completed_steps}
    await repo.checkpoint(
        parse_checkpoint({"job_id": job_id, "lease": lease, "data": data, "progress": progress})
    )
    return lease


async def events_of(repo: JobRepository, job_id: str) -> list[str]:
    replay = await repo.replay(ADMIN, parse_read_stream({"job_id": job_id, "after_seq": 0}))
    return [str(e.type) for e in replay.events]


# -- claim order, delayed jobs, fairness ------------------------------------------------------


async def test_claims_take_the_highest_priority_then_the_oldest(repo: JobRepository) -> None:
    low = await make(repo, priority=-5)
    first_normal = await make(repo)
    high = await make(repo, priority=10)
    second_normal = await make(repo)
    order = [await claim_id(repo) for _ in range(4)]
    assert order == [high.id, first_normal.id, second_normal.id, low.id]
    assert await claim_id(repo) is None


async def test_a_job_is_not_claimable_before_its_run_at(repo: JobRepository) -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    delayed = await make(repo, run_at=later.isoformat(), priority=50)
    due = await make(repo, run_at=(datetime.now(UTC) - timedelta(seconds=1)).isoformat())
    assert delayed.run_at == later
    assert await claim_id(repo) == due.id
    assert await claim_id(repo) is None
    assert (await repo.get_job(ALICE, delayed.id)).state is S.CREATED


async def test_the_fairness_cap_passes_over_a_user_at_the_cap(store: JobStore) -> None:
    repo = repo_with(store, max_running_per_user=1)
    alice_first = await make(repo, ALICE)
    await make(repo, ALICE)
    bob_job = await make(repo, BOB)
    assert await claim_id(repo) == alice_first.id
    assert await claim_id(repo) == bob_job.id  # alice's second waits: she runs one
    assert await claim_id(repo) is None


async def test_concurrent_claims_respect_the_cap(store: JobStore) -> None:
    repo = repo_with(store, max_running_per_user=2)
    for _ in range(6):
        await make(repo, ALICE)
    claimed = await asyncio.gather(*(claim_id(repo) for _ in range(6)))
    assert len([c for c in claimed if c is not None]) == 2


# -- retries and timeouts -----------------------------------------------------------------


async def test_a_retryable_failure_retries_until_the_attempts_are_used(
    repo: JobRepository,
) -> None:
    job = await make(repo, retry={"max_attempts": 3, "backoff_s": 0})
    error = {"message": "flaky", "code": "upstream", "retryable": True}
    for retries in (1, 2):
        claimed = await repo.claim(parse_claim({}, default_worker_id=WORKER.id))
        assert claimed is not None
        assert claimed.job.id == job.id
        after = await repo.fail(
            parse_fail({"job_id": job.id, "lease": claimed.lease, "error": error})
        )
        assert after.state is S.CREATED
        assert after.retries == retries
        assert after.error is not None
        assert after.error.code == "upstream"
    claimed = await repo.claim(parse_claim({}, default_worker_id=WORKER.id))
    assert claimed is not None
    final = await repo.fail(parse_fail({"job_id": job.id, "lease": claimed.lease, "error": error}))
    assert final.state is S.FAILED
    assert final.retries == 2
    retrying = [e for e in published(repo, job.id) if str(e.type) == "job:retrying"]
    assert [e.data["attempt"] for e in retrying] == [1, 2]
    assert retrying[0].data["error"]["code"] == "upstream"


async def test_a_retry_waits_its_backoff_and_keeps_the_checkpoint(repo: JobRepository) -> None:
    job = await make(
        repo, retry={"max_attempts": 2, "backoff_s": 10, "backoff_factor": 3, "max_backoff_s": 60}
    )
    lease = await claimed_with_checkpoint(repo, job.id, completed_steps=2, progress=40)
    after = await repo.fail(
        parse_fail({"job_id": job.id, "lease": lease, "error": {"message": "x", "retryable": True}})
    )
    assert after.state is S.CREATED
    assert after.run_at == after.updated_at + timedelta(seconds=10)
    assert after.has_checkpoint is True
    assert await claim_id(repo) is None  # not before run_at
    replay = await repo.replay(
        ADMIN, parse_read_stream({"job_id": job.id, "after_seq": after.seq - 1})
    )
    assert parse_time(replay.events[0].data["run_at"]) == after.run_at


async def test_a_non_retryable_failure_fails_at_once(repo: JobRepository) -> None:
    job = await make(repo, retry={"max_attempts": 5, "backoff_s": 0})
    claimed = await repo.claim(parse_claim({}, default_worker_id=WORKER.id))
    assert claimed is not None
    after = await repo.fail(
        parse_fail({"job_id": job.id, "lease": claimed.lease, "error": {"message": "bad input"}})
    )
    assert after.state is S.FAILED
    assert after.retries == 0


async def test_an_attempt_past_its_timeout_is_retried_from_its_checkpoint(
    repo: JobRepository,
) -> None:
    job = await make(repo, timeout_s=0.05, retry={"max_attempts": 2, "backoff_s": 0})
    await claimed_with_checkpoint(repo, job.id, completed_steps=1, progress=20)

    async def overdue() -> bool:
        return any(j.record.id == job.id for j in await repo.find_timed_out_jobs())

    await wait_until(overdue)
    found = next(j for j in await repo.find_timed_out_jobs() if j.record.id == job.id)
    retried = await repo.time_out_job(found)
    assert retried is not None
    assert retried.state is S.CREATED
    assert retried.error is not None
    assert (retried.error.code, retried.error.retryable) == ("timeout", True)
    assert await repo.time_out_job(found) is None  # a second supervisor acts once
    again = await repo.claim(parse_claim({}, default_worker_id=WORKER.id))
    assert again is not None
    assert again.checkpoint == {"completed_steps": 1}
    assert again.job.progress == 20
    # The second attempt times out too: no attempts are left, so it fails.
    await wait_until(overdue)
    second = next(j for j in await repo.find_timed_out_jobs() if j.record.id == job.id)
    failed = await repo.time_out_job(second)
    assert failed is not None
    assert failed.state is S.FAILED
    assert "job:retrying" in [str(e.type) for e in published(repo, job.id)]


async def test_jobs_without_a_timeout_never_time_out(repo: JobRepository) -> None:
    await make(repo)
    assert await repo.claim(parse_claim({}, default_worker_id=WORKER.id)) is not None
    assert await repo.find_timed_out_jobs() == []


# -- idempotent create --------------------------------------------------------------------


async def test_a_repeated_key_answers_the_existing_job(repo: JobRepository) -> None:
    first = await repo.create(ALICE, parse_create({"type": "research", "idempotency_key": "k"}))
    again = await repo.create(ALICE, parse_create({"type": "research", "idempotency_key": "k"}))
    assert (first.existing, again.existing) == (False, True)
    assert again.job == first.job
    assert await events_of(repo, first.job.id) == ["job:created"]
    other_user = await repo.create(BOB, parse_create({"type": "research", "idempotency_key": "k"}))
    assert other_user.existing is False
    with pytest.raises(Conflict):
        await repo.create(
            ALICE, parse_create({"type": "research", "input": {"x": 1}, "idempotency_key": "k"})
        )
    with pytest.raises(Conflict):
        await repo.create(ALICE, parse_create({"type": "trade", "idempotency_key": "k"}))


async def test_concurrent_creates_with_one_key_create_one_job(repo: JobRepository) -> None:
    command = parse_create({"type": "research", "idempotency_key": "race"})
    results = await asyncio.gather(*(repo.create(ALICE, command) for _ in range(8)))
    assert len({r.job.id for r in results}) == 1
    assert sorted(r.existing for r in results) == [False] + [True] * 7
    assert len((await repo.list_jobs(ALICE)).items) == 1


async def test_an_expired_key_creates_a_new_job(store: JobStore) -> None:
    repo = repo_with(store, idempotency_ttl_s=0.0)
    command = parse_create({"type": "research", "idempotency_key": "k"})
    first = await repo.create(ALICE, command)
    second = await repo.create(ALICE, command)
    assert second.existing is False
    assert second.job.id != first.job.id


# -- delete and retention -----------------------------------------------------------------


async def _completed(repo: JobRepository, owner: Any = ALICE, **fields: Any) -> Any:
    job = await make(repo, owner, **fields)
    claimed = await repo.claim(parse_claim({}, default_worker_id=WORKER.id))
    assert claimed is not None
    assert claimed.job.id == job.id
    return await repo.complete(
        parse_complete({"job_id": job.id, "lease": claimed.lease, "result": {"ok": True}})
    )


async def test_delete_removes_a_final_job_everywhere(repo: JobRepository) -> None:
    done = await _completed(repo, idempotency_key="d")
    with pytest.raises(NotFound):
        await repo.delete_job(BOB, done.id)
    await repo.delete_job(ALICE, done.id)
    with pytest.raises(NotFound):
        await repo.get_job(ALICE, done.id)
    with pytest.raises(NotFound):
        await repo.replay(ALICE, parse_read_stream({"job_id": done.id, "after_seq": 0}))
    with pytest.raises(NotFound):
        await repo.delete_job(ALICE, done.id)
    assert (await repo.store.list_audit(done.id, limit=10)).entries == ()
    assert await repo.store.get_checkpoint(done.id) is None
    # Its idempotency key is free again.
    again = await repo.create(ALICE, parse_create({"type": "research", "idempotency_key": "d"}))
    assert again.existing is False


@pytest.mark.parametrize("state", [S.CREATED, S.PAUSED])
async def test_delete_refuses_a_job_that_is_not_final(repo: JobRepository, state: S) -> None:
    job = await make(repo)
    if state is S.PAUSED:
        await repo.pause(ALICE, job.id)
    with pytest.raises(InvalidTransition) as refused:
        await repo.delete_job(ALICE, job.id)
    assert refused.value.details == {"state": str(state), "action": "delete"}
    assert (await repo.get_job(ALICE, job.id)).state is state


async def test_an_admin_may_delete_any_final_job(repo: JobRepository) -> None:
    done = await _completed(repo)
    await repo.delete_job(ADMIN, done.id)
    with pytest.raises(NotFound):
        await repo.get_job(ADMIN, done.id)


async def test_retention_deletes_old_final_jobs_in_bounded_batches(repo: JobRepository) -> None:
    done = [await _completed(repo) for _ in range(3)]
    queued = await make(repo)
    assert await repo.sweep_finished(older_than_s=3600, limit=10) == []
    first = await repo.sweep_finished(older_than_s=0, limit=2)
    second = await repo.sweep_finished(older_than_s=0, limit=2)
    assert [j.record.id for j in first] == [done[0].id, done[1].id]
    assert [j.record.id for j in second] == [done[2].id]
    assert (await repo.get_job(ALICE, queued.id)).state is S.CREATED


# -- tags, parents, filters ---------------------------------------------------------------


async def test_list_filters_by_tag_parent_and_priority(repo: JobRepository) -> None:
    parent = await make(repo, tags=["batch:7", "nightly"])
    child = await make(repo, parent_id=parent.id, priority=3, tags=["batch:7"])
    await make(repo, priority=3)

    async def ids(**filters: Any) -> set[str]:
        return {j.id for j in (await repo.list_jobs(ALICE, parse_list(filters))).items}

    assert await ids(tag="batch:7") == {parent.id, child.id}
    assert await ids(tag="nightly") == {parent.id}
    assert await ids(parent_id=parent.id) == {child.id}
    assert len(await ids(priority=3)) == 2
    assert await ids(priority=3, tag="batch:7") == {child.id}
    assert child.parent_id == parent.id


async def test_a_parent_the_caller_may_not_see_is_not_found(repo: JobRepository) -> None:
    bobs = await make(repo, BOB)
    with pytest.raises(NotFound):
        await make(repo, ALICE, parent_id=bobs.id)


@pytest.mark.parametrize(
    "fields",
    [
        {"priority": 101},
        {"priority": True},
        {"tags": ["white space"]},
        {"tags": "one"},
        {"timeout_s": 0},
        {"retry": {"max_attempts": 0}},
        {"retry": {"backoff_factor": 11}},
        {"run_at": "tomorrow"},
        {"parent_id": "not-an-id"},
        {"idempotency_key": ""},
    ],
)
async def test_create_refuses_out_of_range_v2_values(
    repo: JobRepository, fields: dict[str, Any]
) -> None:
    with pytest.raises(ValidationFailed):
        await make(repo, **fields)
    assert (await repo.list_jobs(ADMIN)).items == ()
