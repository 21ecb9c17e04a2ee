"""The job store contract: every store implementation passes this one suite.

The tests drive the stores through the repository, the single entry point, so they check the
rules as users and workers meet them: the transition table, lease fencing, progress rules,
checkpoints, the event stream and its backlog, pagination, the audit trail and concurrency.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from typing import Any

import pytest

from jobspine_shared.events import EventType
from jobspine_shared.states import TRANSITIONS, JobState
from server.errors import (
    InvalidProgress,
    InvalidTransition,
    LeaseLost,
    NotFound,
    PayloadTooLarge,
    ValidationFailed,
)
from server.repository import JobRepository, RepositorySettings
from server.store.base import JobStore
from server.store.progress import ProgressWrite, trailing_progress_change
from tests.support.jobs import ADMIN, ALICE, BOB, WORKER, claim, create, drive
from tests.support.server import TEST_BACKLOG

S = JobState
MAX_CHECKPOINT = 1024


@pytest.fixture
def repo(store: JobStore) -> JobRepository:
    # Every progress report appends its event here: the stores' contract is checked on
    # each change; the repository's per-job event rate has its own cases below.
    settings = RepositorySettings(max_checkpoint_bytes=MAX_CHECKPOINT, progress_events_per_s=0)
    return JobRepository(store, settings)


async def events_of(repo: JobRepository, job_id: str) -> list[tuple[int, str]]:
    replay = await repo.replay(ADMIN, job_id, after_seq=0)
    return [(e.seq, str(e.type)) for e in replay.events]


# -- creation and reading ------------------------------------------------------------------


async def test_create_starts_stream_at_seq_one(repo: JobRepository) -> None:
    job = await repo.create_job(ALICE, type="research", input={"query": "x"})
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
        await repo.create_job(ALICE, type=type_, input=input_)
    assert (await repo.list_jobs(ADMIN)).items == ()


async def test_unknown_malformed_and_foreign_ids(repo: JobRepository) -> None:
    job = await create(repo, ALICE)
    with pytest.raises(NotFound):
        await repo.get_job(ALICE, str(uuid.uuid4()))
    with pytest.raises(ValidationFailed):
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
    if expected is None:
        with pytest.raises(InvalidTransition) as refused:
            await method(ALICE, driven.job.id)
        assert refused.value.details is not None
        assert refused.value.details["state"] == str(source)
        assert await repo.get_job(ALICE, driven.job.id) == before
        return
    after = await method(ALICE, driven.job.id)
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
        return await repo.heartbeat(job_id, lease)
    if call == "progress":
        return await repo.update_progress(job_id, lease, 50)
    if call == "checkpoint":
        return await repo.checkpoint(job_id, lease, {"k": 1})
    if call == "complete":
        return await repo.complete(job_id, lease, {"r": 1})
    if call == "fail":
        return await repo.fail(job_id, lease, {"message": "no"})
    if call == "paused":
        return await repo.paused(job_id, lease)
    raise AssertionError(call)


async def test_full_run_appends_one_event_per_change(repo: JobRepository) -> None:
    job = await create(repo)
    claimed = await repo.claim(WORKER, types=["research"], worker_id="w-7")
    assert claimed is not None
    assert claimed.job.state is S.RUNNING
    assert claimed.job.attempt == 1
    assert claimed.checkpoint is None
    lease = claimed.lease
    assert await repo.heartbeat(job.id, lease) is False
    await repo.update_progress(job.id, lease, 10, "step 1/2")
    await repo.checkpoint(job.id, lease, {"completed_steps": 1}, progress=50)
    done = await repo.complete(job.id, lease, {"answer": 42})
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
    started = (await repo.replay(ALICE, job.id, after_seq=1)).events[0]
    assert started.data == {"attempt": 1, "worker_id": "w-7", "resumed": False}


async def test_fail_records_the_error(repo: JobRepository) -> None:
    driven = await drive(repo, S.RUNNING)
    assert driven.lease
    failed = await repo.fail(
        driven.job.id, driven.lease, {"message": "bad", "code": "quota", "retryable": True}
    )
    assert failed.state is S.FAILED
    assert failed.error is not None
    assert (failed.error.code, failed.error.message, failed.error.retryable) == (
        "quota",
        "bad",
        True,
    )
    replay = await repo.replay(ALICE, driven.job.id, after_seq=failed.seq - 1)
    assert replay.events[0].data["error"]["code"] == "quota"


async def test_pause_request_then_worker_pauses_with_checkpoint(repo: JobRepository) -> None:
    driven = await drive(repo, S.RUNNING)
    job_id, lease = driven.job.id, driven.lease
    assert lease
    with pytest.raises(InvalidTransition):
        await repo.paused(job_id, lease)
    requested = await repo.pause(ALICE, job_id)
    assert requested.state is S.RUNNING
    assert requested.pause_requested is True
    again = await repo.pause(ALICE, job_id)
    assert again.seq == requested.seq
    assert await repo.heartbeat(job_id, lease) is True
    paused = await repo.paused(job_id, lease, {"completed_steps": 3})
    assert paused.state is S.PAUSED
    assert paused.pause_requested is False
    assert paused.has_checkpoint is True
    tail = [t for _, t in await events_of(repo, job_id)][-3:]
    assert tail == ["job:pause_requested", "job:checkpoint", "job:paused"]
    with pytest.raises(LeaseLost):
        await repo.heartbeat(job_id, lease)


async def test_resume_keeps_checkpoint_and_next_claim_hands_it_over(
    repo: JobRepository,
) -> None:
    driven = await drive(repo, S.RUNNING)
    job_id, old_lease = driven.job.id, driven.lease
    assert old_lease
    await repo.update_progress(job_id, old_lease, 30)
    await repo.checkpoint(job_id, old_lease, {"completed_steps": 2}, progress=40)
    await repo.update_progress(job_id, old_lease, 55)
    await repo.pause(ALICE, job_id)
    await repo.paused(job_id, old_lease)
    resumed = await repo.resume(ALICE, job_id)
    assert resumed.state is S.CREATED
    assert resumed.has_checkpoint is True
    claimed = await repo.claim(WORKER)
    assert claimed is not None
    assert claimed.checkpoint == {"completed_steps": 2}
    assert claimed.job.attempt == 2
    assert claimed.job.progress == 40
    assert claimed.lease != old_lease
    started = (await repo.replay(ALICE, job_id, after_seq=claimed.job.seq - 1)).events[0]
    assert started.data["resumed"] is True
    with pytest.raises(LeaseLost) as lost:
        await repo.update_progress(job_id, old_lease, 60)
    assert lost.value.details is not None
    assert lost.value.details["state"] == "running"
    await repo.update_progress(job_id, claimed.lease, 40)


async def test_restart_clears_error_result_and_checkpoint(repo: JobRepository) -> None:
    driven = await drive(repo, S.RUNNING)
    assert driven.lease
    await repo.checkpoint(driven.job.id, driven.lease, {"k": 1}, progress=20)
    await repo.fail(driven.job.id, driven.lease, {"message": "x"})
    restarted = await repo.restart(ALICE, driven.job.id, input={"query": "again"})
    assert restarted.state is S.CREATED
    assert (restarted.error, restarted.result, restarted.has_checkpoint) == (None, None, False)
    assert restarted.progress == 0
    assert restarted.input == {"query": "again"}
    with pytest.raises(NotFound):
        await repo.get_checkpoint(ALICE, driven.job.id)
    claimed = await repo.claim(WORKER)
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
        await repo.heartbeat(str(uuid.uuid4()), "lease")
    with pytest.raises(NotFound):
        await repo.update_progress(str(uuid.uuid4()), "lease", 5)
    with pytest.raises(ValidationFailed):
        await repo.heartbeat("nope", "lease")
    with pytest.raises(ValidationFailed):
        await repo.complete("nope", "lease")


# -- progress rules ------------------------------------------------------------------------


async def test_progress_may_not_go_down_within_an_attempt(repo: JobRepository) -> None:
    driven = await drive(repo, S.RUNNING)
    job_id, lease = driven.job.id, driven.lease
    assert lease
    await repo.update_progress(job_id, lease, 40, "a")
    same = await repo.update_progress(job_id, lease, 40, "b")
    assert same.step == "b"
    with pytest.raises(InvalidProgress):
        await repo.update_progress(job_id, lease, 39.9)
    with pytest.raises(InvalidProgress):
        await repo.checkpoint(job_id, lease, {"k": 1}, progress=10)
    after = await repo.get_job(ALICE, job_id)
    assert (after.progress, after.step, after.has_checkpoint) == (40, "b", False)


@pytest.mark.parametrize(
    "value", [math.nan, math.inf, -math.inf, -0.5, 100.5, True, "50", None, [1]]
)
async def test_progress_refuses_non_numbers(repo: JobRepository, value: Any) -> None:
    driven = await drive(repo, S.RUNNING)
    assert driven.lease
    before = await repo.get_job(ALICE, driven.job.id)
    with pytest.raises(ValidationFailed):
        await repo.update_progress(driven.job.id, driven.lease, value)
    assert await repo.get_job(ALICE, driven.job.id) == before


async def test_step_length_is_bounded(repo: JobRepository) -> None:
    driven = await drive(repo, S.RUNNING)
    assert driven.lease
    await repo.update_progress(driven.job.id, driven.lease, 1, "s" * 256)
    with pytest.raises(ValidationFailed):
        await repo.update_progress(driven.job.id, driven.lease, 2, "s" * 257)


# -- checkpoints ---------------------------------------------------------------------------


async def test_checkpoint_size_limit(repo: JobRepository) -> None:
    driven = await drive(repo, S.RUNNING)
    job_id, lease = driven.job.id, driven.lease
    assert lease
    before = await repo.get_job(ALICE, job_id)
    # {"b":"…"} is 8 bytes of framing around the string.
    with pytest.raises(PayloadTooLarge):
        await repo.checkpoint(job_id, lease, {"b": "x" * (MAX_CHECKPOINT - 7)})
    with pytest.raises(ValidationFailed):
        await repo.checkpoint(job_id, lease, ["not", "an", "object"])
    with pytest.raises(ValidationFailed):
        await repo.checkpoint(job_id, lease, {"bad": math.nan})
    assert await repo.get_job(ALICE, job_id) == before
    saved_at = await repo.checkpoint(job_id, lease, {"b": "x" * (MAX_CHECKPOINT - 8)})
    checkpoint = await repo.get_checkpoint(ALICE, job_id)
    assert checkpoint.info.size_bytes == MAX_CHECKPOINT
    assert checkpoint.info.saved_at == saved_at
    assert checkpoint.info.keys == ("b",)


async def test_checkpoint_with_progress_sets_progress_in_one_event(repo: JobRepository) -> None:
    driven = await drive(repo, S.RUNNING)
    assert driven.lease
    await repo.checkpoint(driven.job.id, driven.lease, {"é": "ü"}, progress=25)
    job = await repo.get_job(ALICE, driven.job.id)
    assert job.progress == 25
    last = (await repo.replay(ALICE, job.id, after_seq=job.seq - 1)).events
    assert [e.type for e in last] == [EventType.CHECKPOINT]
    # Size is of the compact UTF-8 JSON encoding: {"é":"ü"} is 11 bytes.
    assert last[0].data == {"size_bytes": 11, "progress": 25}


# -- event stream and backlog --------------------------------------------------------------


async def test_backlog_keeps_the_last_events_and_says_when_it_covers(
    repo: JobRepository,
) -> None:
    driven = await drive(repo, S.RUNNING)
    job_id, lease = driven.job.id, driven.lease
    assert lease
    for value in range(1, 11):
        await repo.update_progress(job_id, lease, value)
    latest = (await repo.get_job(ALICE, job_id)).seq
    assert latest == 12
    covered = await repo.replay(ALICE, job_id, after_seq=latest - TEST_BACKLOG)
    assert covered.recovered is True
    assert [e.seq for e in covered.events] == list(range(latest - TEST_BACKLOG + 1, latest + 1))
    assert [e.data["progress"] for e in covered.events] == [6, 7, 8, 9, 10]
    too_old = await repo.replay(ALICE, job_id, after_seq=latest - TEST_BACKLOG - 1)
    assert (too_old.recovered, too_old.events) == (False, ())
    assert too_old.job.seq == latest
    up_to_date = await repo.replay(ALICE, job_id, after_seq=latest)
    assert (up_to_date.recovered, up_to_date.events) == (True, ())
    ahead = await repo.replay(ALICE, job_id, after_seq=latest + 1)
    assert ahead.recovered is False
    no_cursor = await repo.replay(ALICE, job_id)
    assert no_cursor.recovered is False
    other_epoch = await repo.replay(ALICE, job_id, after_seq=latest - 1, epoch="other")
    assert other_epoch.recovered is False
    same_epoch = await repo.replay(ALICE, job_id, after_seq=latest - 1, epoch=covered.job.epoch)
    assert [e.seq for e in same_epoch.events] == [latest]


@pytest.mark.parametrize("cursor", [-1, 1.5, "3", True])
async def test_replay_refuses_malformed_cursors(repo: JobRepository, cursor: Any) -> None:
    job = await create(repo)
    with pytest.raises(ValidationFailed):
        await repo.replay(ALICE, job.id, after_seq=cursor)


async def test_sync_answers_per_job(repo: JobRepository) -> None:
    mine = await create(repo, ALICE)
    theirs = await create(repo, BOB)
    missing = str(uuid.uuid4())
    results = await repo.sync(ALICE, {mine.id: 0, theirs.id: 0, missing: 0, "junk": 0})
    assert results[mine.id]["recovered"] is True
    assert [e["seq"] for e in results[mine.id]["events"]] == [1]
    for key in (theirs.id, missing, "junk"):
        assert results[key] == {"error": {"code": "not_found", "message": "No such job."}}
    with pytest.raises(ValidationFailed):
        await repo.sync(ALICE, {mine.id: -1})
    with pytest.raises(ValidationFailed):
        await repo.sync(ALICE, [mine.id])


# -- listing, stats, audit -----------------------------------------------------------------


async def test_cursor_pagination_is_stable_under_inserts(repo: JobRepository) -> None:
    created = [await create(repo, ALICE) for _ in range(7)]
    await create(repo, BOB)
    first = await repo.list_jobs(ALICE, limit=3)
    assert first.next_cursor is not None
    newcomer = await create(repo, ALICE)
    second = await repo.list_jobs(ALICE, limit=3, cursor=first.next_cursor)
    assert second.next_cursor is not None
    third = await repo.list_jobs(ALICE, limit=3, cursor=second.next_cursor)
    assert third.next_cursor is None
    seen = [j.id for j in first.items + second.items + third.items]
    assert seen == [j.id for j in reversed(created)]
    assert newcomer.id not in seen
    everyone = await repo.list_jobs(ADMIN, limit=50)
    assert len(everyone.items) == 9
    bobs = await repo.list_jobs(ADMIN, user_id="bob")
    assert {j.user_id for j in bobs.items} == {"bob"}
    assert {j.user_id for j in (await repo.list_jobs(ALICE, user_id="bob")).items} == {"alice"}


async def test_list_filters_by_state_and_type(repo: JobRepository) -> None:
    await drive(repo, S.PAUSED)
    other = await repo.create_job(ALICE, type="trade", input={})
    paused = await repo.list_jobs(ALICE, state="paused")
    assert [j.state for j in paused.items] == [S.PAUSED]
    trades = await repo.list_jobs(ALICE, type="trade")
    assert [j.id for j in trades.items] == [other.id]
    for bad in ({"state": "nope"}, {"limit": 0}, {"limit": 201}, {"cursor": "%%%"}):
        with pytest.raises(ValidationFailed):
            await repo.list_jobs(ALICE, **bad)


async def test_stats_count_by_state(repo: JobRepository) -> None:
    await drive(repo, S.PAUSED)
    await drive(repo, S.COMPLETED)
    await drive(repo, S.CREATED, owner=BOB)
    mine = await repo.get_stats(ALICE)
    assert mine["total"] == 2
    assert mine["by_state"]["paused"] == 1
    assert mine["by_state"]["completed"] == 1
    assert mine["by_state"]["created"] == 0
    assert (await repo.get_stats(ADMIN))["total"] == 3


async def test_audit_trail_records_who_did_what(repo: JobRepository) -> None:
    job = await create(repo, ALICE)
    await repo.pause(ALICE, job.id)
    await repo.resume(ADMIN, job.id)
    await repo.cancel(ALICE, job.id)
    await repo.restart(ALICE, job.id)
    trail = await repo.audit_trail(ALICE, job.id)
    assert [(a.action, a.actor) for a in trail] == [
        ("pause", "alice"),
        ("resume", "root"),
        ("cancel", "alice"),
        ("restart", "alice"),
    ]
    assert trail[1].details["role"] == "admin"
    assert all(a.at is not None for a in trail)
    with pytest.raises(NotFound):
        await repo.audit_trail(BOB, job.id)


# -- concurrency ---------------------------------------------------------------------------


async def test_concurrent_claims_take_each_job_once(repo: JobRepository) -> None:
    jobs = {(await create(repo)).id for _ in range(5)}
    claims = await asyncio.gather(*(repo.claim(WORKER) for _ in range(20)))
    taken = [c.job.id for c in claims if c is not None]
    assert sorted(taken) == sorted(jobs)


async def test_claim_takes_the_oldest_of_the_given_types(repo: JobRepository) -> None:
    oldest = await repo.create_job(ALICE, type="trade", input={})
    await repo.create_job(ALICE, type="research", input={})
    newer_trade = await repo.create_job(ALICE, type="trade", input={})
    assert await repo.claim(WORKER, types=["analysis"]) is None
    first = await repo.claim(WORKER, types=["trade"])
    second = await repo.claim(WORKER, types=["trade"])
    assert first is not None
    assert second is not None
    assert (first.job.id, second.job.id) == (oldest.id, newer_trade.id)
    assert await repo.claim(WORKER, types=["trade"]) is None


async def test_held_jobs_are_not_claimable(repo: JobRepository) -> None:
    held = await drive(repo, S.PAUSED)
    assert await repo.claim(WORKER) is None
    await repo.resume(ALICE, held.job.id)
    assert await claim(repo, held.job.id)


async def test_concurrent_progress_gives_consecutive_seqs(repo: JobRepository) -> None:
    driven = await drive(repo, S.RUNNING)
    job_id, lease = driven.job.id, driven.lease
    assert lease
    start = (await repo.get_job(ALICE, job_id)).seq
    await asyncio.gather(*(repo.update_progress(job_id, lease, 10) for _ in range(25)))
    job = await repo.get_job(ALICE, job_id)
    assert job.seq == start + 25
    replay = await repo.replay(ALICE, job_id, after_seq=job.seq - TEST_BACKLOG)
    assert [e.seq for e in replay.events] == list(range(job.seq - TEST_BACKLOG + 1, job.seq + 1))


async def test_concurrent_cancel_and_complete_apply_exactly_one(repo: JobRepository) -> None:
    driven = await drive(repo, S.RUNNING)
    assert driven.lease
    outcomes = await asyncio.gather(
        repo.cancel(ALICE, driven.job.id),
        repo.complete(driven.job.id, driven.lease, None),
        return_exceptions=True,
    )
    errors = [o for o in outcomes if isinstance(o, Exception)]
    assert len(errors) == 1
    assert isinstance(errors[0], LeaseLost | InvalidTransition)
    job = await repo.get_job(ALICE, driven.job.id)
    assert job.state in (S.CANCELLED, S.COMPLETED)
    assert job.seq == driven.job.seq + 1


# -- progress without its event (the repository's per-job event rate) ------------------------


async def test_progress_without_event_updates_the_row_only(repo: JobRepository) -> None:
    driven = await drive(repo, S.RUNNING)
    job_id, lease = driven.job.id, driven.lease
    assert lease
    store = repo.store
    before = await store.get(job_id)
    assert before is not None
    held = ProgressWrite(lease=lease, progress=40.0, step="quietly", with_event=False)

    result = await store.update_progress(job_id, held)

    assert result.events == ()
    after = await store.get(job_id)
    assert after is not None
    assert (after.record.progress, after.record.step) == (40.0, "quietly")
    assert after.record.seq == before.record.seq
    assert after.record.last_heartbeat_at is not None
    assert before.record.last_heartbeat_at is not None
    assert after.record.last_heartbeat_at >= before.record.last_heartbeat_at
    read = await store.read_stream(job_id, 0)
    assert read is not None
    assert read.events[-1].seq == before.record.seq  # nothing appended


async def test_progress_without_event_is_fenced_like_with_one(repo: JobRepository) -> None:
    driven = await drive(repo, S.RUNNING)
    job_id, lease = driven.job.id, driven.lease
    assert lease
    store = repo.store
    await store.update_progress(job_id, ProgressWrite(lease=lease, progress=50.0, step=None))
    for error, write in [
        (InvalidProgress, ProgressWrite(lease=lease, progress=10.0, step=None, with_event=False)),
        (LeaseLost, ProgressWrite(lease="other", progress=60.0, step=None, with_event=False)),
    ]:
        with pytest.raises(error):
            await store.update_progress(job_id, write)
    with pytest.raises(NotFound):
        await store.update_progress(
            str(uuid.uuid4()), ProgressWrite(lease=lease, progress=1.0, step=None)
        )
    await repo.complete(job_id, lease, None)
    with pytest.raises(LeaseLost):
        await store.update_progress(
            job_id, ProgressWrite(lease=lease, progress=100.0, step=None, with_event=False)
        )
    job = await store.get(job_id)
    assert job is not None
    assert (job.record.state, job.record.progress) == (S.COMPLETED, 100.0)


async def test_a_trailing_progress_event_carries_the_stored_values(repo: JobRepository) -> None:
    driven = await drive(repo, S.RUNNING)
    job_id, lease = driven.job.id, driven.lease
    assert lease
    store = repo.store
    quiet = ProgressWrite(lease=lease, progress=70.0, step="almost", with_event=False)
    await store.update_progress(job_id, quiet)
    before = await store.get(job_id)
    assert before is not None

    result = await store.apply(job_id, trailing_progress_change(lease))

    (event,) = result.events
    assert event.seq == before.record.seq + 1 == result.job.record.seq
    assert (str(event.type), event.data) == ("job:progress", {"progress": 70.0, "step": "almost"})
    read = await store.read_stream(job_id, before.record.seq)
    assert read is not None
    assert read.events == (event,)
    with pytest.raises(LeaseLost):
        await store.apply(job_id, trailing_progress_change("other"))
