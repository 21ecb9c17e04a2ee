"""The store contract, progress and checkpoints: the progress floor within an attempt, value
checks, the checkpoint size limit, and progress stored without its event (the repository's
per-job event rate) with its trailing event; on both stores.
"""

from __future__ import annotations

import math
import uuid
from typing import Any

import pytest

from jobspine_shared.events import EventType
from jobspine_shared.states import JobState
from server.commands.user import parse_read_stream
from server.commands.worker import parse_checkpoint, parse_complete, parse_progress
from server.errors import InvalidProgress, LeaseLost, NotFound, PayloadTooLarge, ValidationFailed
from server.service import JobRepository
from server.store.progress import ProgressWrite, trailing_progress_change
from tests.support.jobs import ALICE, drive, running
from tests.support.store_contract import MAX_CHECKPOINT

S = JobState


async def test_progress_may_not_go_down_within_an_attempt(repo: JobRepository) -> None:
    job_id, lease = await running(repo)
    await repo.update_progress(
        parse_progress({"job_id": job_id, "lease": lease, "progress": 40, "step": "a"})
    )
    await repo.update_progress(
        parse_progress({"job_id": job_id, "lease": lease, "progress": 40, "step": "b"})
    )
    assert (await repo.get_job(ALICE, job_id)).step == "b"
    with pytest.raises(InvalidProgress):
        await repo.update_progress(
            parse_progress({"job_id": job_id, "lease": lease, "progress": 39.9})
        )
    with pytest.raises(InvalidProgress):
        await repo.checkpoint(
            parse_checkpoint({"job_id": job_id, "lease": lease, "data": {"k": 1}, "progress": 10})
        )
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
        await repo.update_progress(
            parse_progress({"job_id": driven.job.id, "lease": driven.lease, "progress": value})
        )
    assert await repo.get_job(ALICE, driven.job.id) == before


async def test_step_length_is_bounded(repo: JobRepository) -> None:
    driven = await drive(repo, S.RUNNING)
    assert driven.lease
    await repo.update_progress(
        parse_progress(
            {"job_id": driven.job.id, "lease": driven.lease, "progress": 1, "step": "s" * 256}
        )
    )
    with pytest.raises(ValidationFailed):
        await repo.update_progress(
            parse_progress(
                {"job_id": driven.job.id, "lease": driven.lease, "progress": 2, "step": "s" * 257}
            )
        )


# -- checkpoints ---------------------------------------------------------------------------


async def test_checkpoint_size_limit(repo: JobRepository) -> None:
    job_id, lease = await running(repo)
    before = await repo.get_job(ALICE, job_id)
    # {"b":"…"} is 8 bytes of framing around the string.
    with pytest.raises(PayloadTooLarge):
        await repo.checkpoint(
            parse_checkpoint(
                {"job_id": job_id, "lease": lease, "data": {"b": "x" * (MAX_CHECKPOINT - 7)}}
            )
        )
    with pytest.raises(ValidationFailed):
        await repo.checkpoint(
            parse_checkpoint({"job_id": job_id, "lease": lease, "data": ["not", "an", "object"]})
        )
    with pytest.raises(ValidationFailed):
        await repo.checkpoint(
            parse_checkpoint({"job_id": job_id, "lease": lease, "data": {"bad": math.nan}})
        )
    assert await repo.get_job(ALICE, job_id) == before
    saved_at = await repo.checkpoint(
        parse_checkpoint(
            {"job_id": job_id, "lease": lease, "data": {"b": "x" * (MAX_CHECKPOINT - 8)}}
        )
    )
    checkpoint = await repo.get_checkpoint(ALICE, job_id)
    assert checkpoint.info.size_bytes == MAX_CHECKPOINT
    assert checkpoint.info.saved_at == saved_at
    assert checkpoint.info.keys == ("b",)


async def test_checkpoint_with_progress_sets_progress_in_one_event(repo: JobRepository) -> None:
    driven = await drive(repo, S.RUNNING)
    assert driven.lease
    await repo.checkpoint(
        parse_checkpoint(
            {"job_id": driven.job.id, "lease": driven.lease, "data": {"é": "ü"}, "progress": 25}
        )
    )
    job = await repo.get_job(ALICE, driven.job.id)
    assert job.progress == 25
    last = (
        await repo.replay(ALICE, parse_read_stream({"job_id": job.id, "after_seq": job.seq - 1}))
    ).events
    assert [e.type for e in last] == [EventType.CHECKPOINT]
    # Size is of the compact UTF-8 JSON encoding: {"é":"ü"} is 11 bytes.
    assert last[0].data == {"size_bytes": 11, "progress": 25}


# -- progress without its event (the repository's per-job event rate) ------------------------


async def test_progress_without_event_updates_the_row_only(repo: JobRepository) -> None:
    job_id, lease = await running(repo)
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
    job_id, lease = await running(repo)
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
    await repo.complete(parse_complete({"job_id": job_id, "lease": lease, "result": None}))
    with pytest.raises(LeaseLost):
        await store.update_progress(
            job_id, ProgressWrite(lease=lease, progress=100.0, step=None, with_event=False)
        )
    job = await store.get(job_id)
    assert job is not None
    assert (job.record.state, job.record.progress) == (S.COMPLETED, 100.0)


async def test_a_trailing_progress_event_carries_the_stored_values(repo: JobRepository) -> None:
    job_id, lease = await running(repo)
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
