"""The job store contract: every store implementation passes this one suite.

The tests drive the stores through the repository, the single entry point, so they check the
rules as users and workers meet them: creation and reading, the transition table and lease
fencing here; progress and checkpoints in ``test_store_progress.py``; the event stream,
listing, stats and audit in ``test_store_reads.py``; concurrency in
``test_store_concurrency.py``. The repository is the ``repo`` fixture of ``tests/conftest.py``
(``contract_repo`` in ``tests/support/store_contract.py``).
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from jobspine_shared.states import TRANSITIONS, JobState
from server.commands.create import parse_create
from server.commands.user import RestartJob, parse_job_ref, parse_read_stream, parse_restart
from server.commands.worker import (
    parse_checkpoint,
    parse_claim,
    parse_complete,
    parse_fail,
    parse_heartbeat,
    parse_paused,
    parse_progress,
)
from server.errors import InvalidTransition, LeaseLost, NotFound, ValidationFailed
from server.service import JobRepository
from tests.support.jobs import ADMIN, ALICE, BOB, WORKER, create, drive, running
from tests.support.store_contract import events_of

S = JobState


# -- creation and reading ------------------------------------------------------------------


async def test_create_starts_stream_at_seq_one(repo: JobRepository) -> None:
    job = (
        await repo.create(ALICE, parse_create({"type": "research", "input": {"query": "x"}}))
    ).job
    assert job.state is S.CREATED
    assert job.seq == 1
    assert job.user_id == "alice"
    assert job.input == {"query": "x"}
    assert job.epoch
    assert await events_of(repo, job.id) == [(1, "job:created")]
    assert await repo.get_job(ALICE, job.id) == job


@pytest.mark.parametrize(
    ("type_", "input_"),
    [("", {}), ("UPPER", {}), ("x" * 65, {}), ("ok", []), ("ok", "text"), (3, {})],
)
async def test_create_refuses_bad_values(repo: JobRepository, type_: Any, input_: Any) -> None:
    with pytest.raises(ValidationFailed):
        await repo.create(ALICE, parse_create({"type": type_, "input": input_}))
    assert (await repo.list_jobs(ADMIN)).items == ()


async def test_unknown_malformed_and_foreign_ids(repo: JobRepository) -> None:
    job = await create(repo, ALICE)
    with pytest.raises(NotFound):
        await repo.get_job(ALICE, str(uuid.uuid4()))
    with pytest.raises(ValidationFailed):  # a call's job_id is checked by its parser
        parse_job_ref({"job_id": "not-a-uuid"})
    with pytest.raises(NotFound):  # and names no job in the service, on either store
        await repo.get_job(ALICE, "not-a-uuid")
    with pytest.raises(NotFound):
        await repo.get_job(BOB, job.id)
    with pytest.raises(NotFound):
        await repo.cancel(BOB, job.id)
    assert (await repo.get_job(ADMIN, job.id)).state is S.CREATED


# -- the transition table ------------------------------------------------------------------

USER_ACTIONS = {
    "pause": {S.CREATED: S.PAUSED, S.RUNNING: S.RUNNING},
    "resume": {S.PAUSED: S.CREATED},
    "cancel": {S.CREATED: S.CANCELLED, S.RUNNING: S.CANCELLED, S.PAUSED: S.CANCELLED},
    "restart": {S.FAILED: S.CREATED, S.CANCELLED: S.CREATED},
}


@pytest.mark.parametrize("action", sorted(USER_ACTIONS))
@pytest.mark.parametrize("source", list(JobState))
async def test_user_actions_follow_the_table(
    repo: JobRepository, action: str, source: JobState
) -> None:
    driven = await drive(repo, source)
    before = await repo.get_job(ALICE, driven.job.id)
    expected = USER_ACTIONS[action].get(source)
    method = getattr(repo, action)
    # Each takes the job's id, restart its command.
    target = RestartJob(job_id=driven.job.id) if action == "restart" else driven.job.id
    if expected is None:
        with pytest.raises(InvalidTransition) as refused:
            await method(ALICE, target)
        assert refused.value.details is not None
        assert refused.value.details["state"] == str(source)
        assert await repo.get_job(ALICE, driven.job.id) == before
        return
    after = await method(ALICE, target)
    assert after.state is expected
    if expected is not source:
        assert (source, expected) in TRANSITIONS
    assert after.seq == before.seq + 1


@pytest.mark.parametrize("source", [s for s in JobState if s is not S.RUNNING])
@pytest.mark.parametrize("call", ["heartbeat", "progress", "checkpoint", "complete", "fail"])
async def test_worker_calls_need_a_running_job(
    repo: JobRepository, source: JobState, call: str
) -> None:
    driven = await drive(repo, source)
    before = await repo.get_job(ALICE, driven.job.id)
    with pytest.raises(LeaseLost) as lost:
        await worker_call(repo, call, driven.job.id, driven.lease or "no-lease")
    assert lost.value.details is not None
    assert lost.value.details["state"] == str(source)
    assert await repo.get_job(ALICE, driven.job.id) == before


async def worker_call(repo: JobRepository, call: str, job_id: str, lease: str) -> object:
    if call == "heartbeat":
        return await repo.heartbeat(parse_heartbeat({"job_id": job_id, "lease": lease}))
    if call == "progress":
        await repo.update_progress(
            parse_progress({"job_id": job_id, "lease": lease, "progress": 50})
        )
        return None
    if call == "checkpoint":
        return await repo.checkpoint(
            parse_checkpoint({"job_id": job_id, "lease": lease, "data": {"k": 1}})
        )
    if call == "complete":
        return await repo.complete(
            parse_complete({"job_id": job_id, "lease": lease, "result": {"r": 1}})
        )
    if call == "fail":
        return await repo.fail(
            parse_fail({"job_id": job_id, "lease": lease, "error": {"message": "no"}})
        )
    if call == "paused":
        return await repo.paused(parse_paused({"job_id": job_id, "lease": lease}))
    raise AssertionError(call)


async def test_full_run_appends_one_event_per_change(repo: JobRepository) -> None:
    job = await create(repo)
    claimed = await repo.claim(
        parse_claim({"types": ["research"], "worker_id": "w-7"}, default_worker_id=WORKER.id)
    )
    assert claimed is not None
    assert claimed.job.state is S.RUNNING
    assert claimed.job.attempt == 1
    assert claimed.checkpoint is None
    lease = claimed.lease
    assert await repo.heartbeat(parse_heartbeat({"job_id": job.id, "lease": lease})) is False
    await repo.update_progress(
        parse_progress({"job_id": job.id, "lease": lease, "progress": 10, "step": "step 1/2"})
    )
    await repo.checkpoint(
        parse_checkpoint(
            {"job_id": job.id, "lease": lease, "data": {"completed_steps": 1}, "progress": 50}
        )
    )
    done = await repo.complete(
        parse_complete({"job_id": job.id, "lease": lease, "result": {"answer": 42}})
    )
    assert done.state is S.COMPLETED
    assert done.result == {"answer": 42}
    assert done.progress == 100
    assert done.completed_at is not None
    assert await events_of(repo, job.id) == [
        (1, "job:created"),
        (2, "job:started"),
        (3, "job:progress"),
        (4, "job:checkpoint"),
        (5, "job:completed"),
    ]
    started = (
        await repo.replay(ALICE, parse_read_stream({"job_id": job.id, "after_seq": 1}))
    ).events[0]
    assert started.data == {"attempt": 1, "worker_id": "w-7", "resumed": False}


async def test_fail_records_the_error(repo: JobRepository) -> None:
    driven = await drive(repo, S.RUNNING)
    assert driven.lease
    failed = await repo.fail(
        parse_fail(
            {
                "job_id": driven.job.id,
                "lease": driven.lease,
                "error": {"message": "bad", "code": "quota", "retryable": True},
            }
        )
    )
    assert failed.state is S.FAILED
    assert failed.error is not None
    assert (failed.error.code, failed.error.message, failed.error.retryable) == (
        "quota",
        "bad",
        True,
    )
    replay = await repo.replay(
        ALICE, parse_read_stream({"job_id": driven.job.id, "after_seq": failed.seq - 1})
    )
    assert replay.events[0].data["error"]["code"] == "quota"


async def test_pause_request_then_worker_pauses_with_checkpoint(repo: JobRepository) -> None:
    job_id, lease = await running(repo)
    with pytest.raises(InvalidTransition):
        await repo.paused(parse_paused({"job_id": job_id, "lease": lease}))
    requested = await repo.pause(ALICE, job_id)
    assert requested.state is S.RUNNING
    assert requested.pause_requested is True
    again = await repo.pause(ALICE, job_id)
    assert again.seq == requested.seq
    assert await repo.heartbeat(parse_heartbeat({"job_id": job_id, "lease": lease})) is True
    paused = await repo.paused(
        parse_paused({"job_id": job_id, "lease": lease, "checkpoint": {"completed_steps": 3}})
    )
    assert paused.state is S.PAUSED
    assert paused.pause_requested is False
    assert paused.has_checkpoint is True
    tail = [t for _, t in await events_of(repo, job_id)][-3:]
    assert tail == ["job:pause_requested", "job:checkpoint", "job:paused"]
    with pytest.raises(LeaseLost):
        await repo.heartbeat(parse_heartbeat({"job_id": job_id, "lease": lease}))


async def test_resume_keeps_checkpoint_and_next_claim_hands_it_over(
    repo: JobRepository,
) -> None:
    job_id, old_lease = await running(repo)
    await repo.update_progress(
        parse_progress({"job_id": job_id, "lease": old_lease, "progress": 30})
    )
    await repo.checkpoint(
        parse_checkpoint(
            {"job_id": job_id, "lease": old_lease, "data": {"completed_steps": 2}, "progress": 40}
        )
    )
    await repo.update_progress(
        parse_progress({"job_id": job_id, "lease": old_lease, "progress": 55})
    )
    await repo.pause(ALICE, job_id)
    await repo.paused(parse_paused({"job_id": job_id, "lease": old_lease}))
    resumed = await repo.resume(ALICE, job_id)
    assert resumed.state is S.CREATED
    assert resumed.has_checkpoint is True
    claimed = await repo.claim(parse_claim({}, default_worker_id=WORKER.id))
    assert claimed is not None
    assert claimed.checkpoint == {"completed_steps": 2}
    assert claimed.job.attempt == 2
    assert claimed.job.progress == 40
    assert claimed.lease != old_lease
    started = (
        await repo.replay(
            ALICE, parse_read_stream({"job_id": job_id, "after_seq": claimed.job.seq - 1})
        )
    ).events[0]
    assert started.data["resumed"] is True
    with pytest.raises(LeaseLost) as lost:
        await repo.update_progress(
            parse_progress({"job_id": job_id, "lease": old_lease, "progress": 60})
        )
    assert lost.value.details is not None
    assert lost.value.details["state"] == "running"
    await repo.update_progress(
        parse_progress({"job_id": job_id, "lease": claimed.lease, "progress": 40})
    )


async def test_restart_clears_error_result_and_checkpoint(repo: JobRepository) -> None:
    driven = await drive(repo, S.RUNNING)
    assert driven.lease
    await repo.checkpoint(
        parse_checkpoint(
            {"job_id": driven.job.id, "lease": driven.lease, "data": {"k": 1}, "progress": 20}
        )
    )
    await repo.fail(
        parse_fail({"job_id": driven.job.id, "lease": driven.lease, "error": {"message": "x"}})
    )
    restarted = await repo.restart(
        ALICE, parse_restart({"job_id": driven.job.id, "input": {"query": "again"}})
    )
    assert restarted.state is S.CREATED
    assert (restarted.error, restarted.result, restarted.has_checkpoint) == (None, None, False)
    assert restarted.progress == 0
    assert restarted.input == {"query": "again"}
    with pytest.raises(NotFound):
        await repo.get_checkpoint(ALICE, driven.job.id)
    claimed = await repo.claim(parse_claim({}, default_worker_id=WORKER.id))
    assert claimed is not None
    assert claimed.checkpoint is None


# -- fencing -------------------------------------------------------------------------------


@pytest.mark.parametrize("call", ["heartbeat", "progress", "checkpoint", "complete", "fail"])
async def test_cancel_revokes_the_lease(repo: JobRepository, call: str) -> None:
    driven = await drive(repo, S.RUNNING)
    assert driven.lease
    cancelled = await repo.cancel(ALICE, driven.job.id)
    with pytest.raises(LeaseLost) as lost:
        await worker_call(repo, call, driven.job.id, driven.lease)
    assert lost.value.details is not None
    assert lost.value.details["state"] == "cancelled"
    assert await repo.get_job(ALICE, driven.job.id) == cancelled


async def test_a_foreign_lease_changes_nothing(repo: JobRepository) -> None:
    driven = await drive(repo, S.RUNNING)
    before = await repo.get_job(ALICE, driven.job.id)
    for call in ["heartbeat", "progress", "checkpoint", "complete", "fail", "paused"]:
        with pytest.raises(LeaseLost):
            await worker_call(repo, call, driven.job.id, "forged-lease")
    assert await repo.get_job(ALICE, driven.job.id) == before


async def test_worker_calls_on_unknown_or_malformed_jobs(repo: JobRepository) -> None:
    with pytest.raises(NotFound):
        await repo.heartbeat(parse_heartbeat({"job_id": str(uuid.uuid4()), "lease": "lease"}))
    with pytest.raises(NotFound):
        await repo.update_progress(
            parse_progress({"job_id": str(uuid.uuid4()), "lease": "lease", "progress": 5})
        )
    with pytest.raises(ValidationFailed):
        await repo.heartbeat(parse_heartbeat({"job_id": "nope", "lease": "lease"}))
    with pytest.raises(ValidationFailed):
        await repo.complete(parse_complete({"job_id": "nope", "lease": "lease"}))
