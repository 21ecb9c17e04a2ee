"""The Python client's pure parts: the replay logic of one job's stream (``JobStream``: cursor,
duplicates, gaps, epochs, replays), the fold over a whole lifecycle, token refresh timing and
the storages."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
import pytest

from jobspine_client.fold import apply_event
from jobspine_client.storage import FileStorage, MemoryStorage
from jobspine_client.stream import JobStream, Verdict
from jobspine_client.tokens import refresh_delay
from jobspine_shared.states import JobState
from tests.support.wire_samples import JOB_ID, OTHER_ID, event, record, snapshot


def following(seq: int = 3, **fields: Any) -> JobStream:
    stream = JobStream(JOB_ID)
    stream.on_replay(
        {"job": snapshot(seq, state=JobState.RUNNING, **fields), "events": [], "recovered": False}
    )
    return stream


# -- one job's stream ---------------------------------------------------------------------------


def test_first_subscribe_asks_for_the_snapshot_and_starts_from_it() -> None:
    stream = JobStream(JOB_ID)
    assert stream.subscribe_payload() == {"job_id": JOB_ID}

    stream.on_replay({"job": snapshot(7), "events": [], "recovered": False})

    assert stream.last_seq == 7
    assert stream.subscribe_payload() == {"job_id": JOB_ID, "after_seq": 7, "epoch": "e1"}


def test_events_before_any_snapshot_are_left_for_the_subscribe() -> None:
    assert JobStream(JOB_ID).on_event(event(1)) is Verdict.EARLY


def test_next_event_is_applied() -> None:
    stream = following(3)

    assert stream.on_event(event(4, progress=42.5, step="step 2/5: fetching")) is Verdict.APPLIED

    assert stream.job is not None
    assert (stream.job.seq, stream.job.progress) == (4, 42.5)
    assert stream.job.step == "step 2/5: fetching"


@pytest.mark.parametrize("seq", [1, 3])
def test_seen_events_are_dropped(seq: int) -> None:
    stream = following(3, progress=30.0)

    assert stream.on_event(event(seq, progress=99.0)) is Verdict.DUPLICATE

    assert stream.job is not None
    assert (stream.job.seq, stream.job.progress) == (3, 30.0)


def test_a_gap_asks_for_a_resync_from_the_cursor() -> None:
    stream = following(3)

    assert stream.on_event(event(5)) is Verdict.RESYNC

    assert stream.last_seq == 3
    assert stream.subscribe_payload() == {"job_id": JOB_ID, "after_seq": 3, "epoch": "e1"}


def test_another_epoch_asks_for_a_resync() -> None:
    assert following(3).on_event(event(4, epoch="e2")) is Verdict.RESYNC


def test_other_jobs_events_are_ignored() -> None:
    stream = following(3)

    assert stream.on_event(event(4, job_id=OTHER_ID)) is Verdict.OTHER_JOB
    assert stream.last_seq == 3


def test_recovered_replay_fills_the_gap_and_skips_what_was_seen() -> None:
    stream = following(3)
    assert stream.on_event(event(4)) is Verdict.APPLIED

    replayed = stream.on_replay(
        {"job": snapshot(6), "events": [event(4), event(5), event(6)], "recovered": True}
    )

    assert [e["seq"] for e in replayed.events] == [5, 6]
    assert not replayed.reset
    assert stream.last_seq == 6
    assert stream.snapshots == 1
    # A live event that raced the replay is now a duplicate.
    assert stream.on_event(event(6)) is Verdict.DUPLICATE
    assert stream.on_event(event(7)) is Verdict.APPLIED


def test_unrecovered_replay_restarts_from_the_snapshot() -> None:
    stream = following(3)

    replayed = stream.on_replay(
        {"job": snapshot(250, progress=80.0), "events": [], "recovered": False}
    )

    assert replayed.events == []
    assert replayed.reset
    assert stream.job is not None
    assert (stream.job.seq, stream.job.progress) == (250, 80.0)
    assert stream.snapshots == 2


def test_a_new_epoch_in_the_snapshot_replaces_the_view() -> None:
    stream = following(9)

    stream.on_replay({"job": snapshot(2, epoch="e2"), "events": [], "recovered": True})

    assert (stream.last_seq, stream.epoch) == (2, "e2")


def test_a_replay_with_a_hole_falls_back_to_the_snapshot() -> None:
    stream = following(3)

    stream.on_replay({"job": snapshot(6), "events": [event(4), event(6)], "recovered": True})

    assert stream.last_seq == 6
    assert stream.snapshots == 2


def test_events_drive_the_state_machine() -> None:
    job = JobStream(JOB_ID)
    job.on_replay({"job": snapshot(1), "events": [], "recovered": False})
    stream = [
        event(2, "job:started", attempt=1, worker_id="w", resumed=False),
        event(3, progress=40.0, step="step 2/5: fetching sources"),
        event(4, "job:checkpoint", size_bytes=10),
        event(5, "job:pause_requested"),
        event(6, "job:paused", reason="user"),
        event(7, "job:resumed"),
        event(8, "job:started", attempt=2, worker_id="w", resumed=True),
        event(9, "job:checkpoint", size_bytes=10, progress=60.0),
        event(10, "job:completed", result={"answer": 42}),
    ]
    states = []
    for item in stream:
        assert job.on_event(item) is Verdict.APPLIED
        assert job.job is not None
        states.append(job.job.state)

    assert states == [
        JobState.RUNNING,
        JobState.RUNNING,
        JobState.RUNNING,
        JobState.RUNNING,
        JobState.PAUSED,
        JobState.CREATED,
        JobState.RUNNING,
        JobState.RUNNING,
        JobState.COMPLETED,
    ]
    assert job.job is not None
    assert job.job.attempt == 2
    assert job.job.result == {"answer": 42}
    assert job.job.progress == 100.0
    assert job.job.has_checkpoint


def test_failure_and_restart() -> None:
    base = record(1)
    error = {"code": "handler_error", "message": "boom", "retryable": False}

    failed = apply_event(base, event(2, "job:failed", error=error))
    restarted = apply_event(failed, event(3, "job:restarted"))

    assert failed.state is JobState.FAILED
    assert failed.error is not None
    assert failed.error.message == "boom"
    assert restarted.state is JobState.CREATED
    assert restarted.error is None


def test_a_v2_retry_goes_back_to_created_with_its_error_and_run_at() -> None:
    base = record(2, state=JobState.RUNNING)
    error = {"code": "busy", "message": "busy", "retryable": True}

    retrying = apply_event(
        base, event(3, "job:retrying", error=error, attempt=1, run_at="2026-11-22T10:01:00Z")
    )

    assert retrying.state is JobState.CREATED
    assert retrying.retries == 1
    assert retrying.error is not None
    assert retrying.error.retryable
    assert retrying.run_at == datetime(2026, 11, 22, 10, 1, tzinfo=UTC)


def test_an_unknown_event_type_moves_only_the_cursor() -> None:
    base = record(2)
    later = apply_event(base, event(3, "job:from_the_future", anything=1))
    assert later == base.evolve(seq=3, updated_at=datetime(2026, 11, 22, 10, 0, 5, tzinfo=UTC))


# -- token refresh timing and storage ------------------------------------------------------


def test_refresh_is_due_a_quarter_of_the_lifetime_before_exp_and_at_most_30_s() -> None:
    short = jwt.encode({"sub": "u", "iat": 1000, "exp": 1008}, "k" * 32, algorithm="HS256")
    long = jwt.encode({"sub": "u", "iat": 1000, "exp": 4600}, "k" * 32, algorithm="HS256")

    assert refresh_delay(short, now=1000) == 6.0
    assert refresh_delay(long, now=1000) == 3570.0
    assert refresh_delay(long, now=5000) == 0.0
    assert refresh_delay("not-a-jwt", now=1000) is None


@pytest.mark.parametrize("kind", ["memory", "file"])
def test_storages_keep_set_values_and_forget_removed_ones(kind: str, tmp_path: Path) -> None:
    storage = MemoryStorage() if kind == "memory" else FileStorage(tmp_path)
    assert storage.get_item("jobspine:job:a") is None
    storage.set_item("jobspine:job:a", "1")
    storage.set_item("jobspine:job:a", "2")
    assert storage.get_item("jobspine:job:a") == "2"
    storage.remove_item("jobspine:job:a")
    assert storage.get_item("jobspine:job:a") is None
