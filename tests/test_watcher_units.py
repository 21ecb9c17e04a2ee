"""The reference client's pure parts: the follower's replay logic (``JobStreamFollower``)
and the terminal view (progress line, event notes, redraws)."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

import pytest

from jobspine_shared.models import JobRecord
from jobspine_shared.states import JobState
from jobspine_shared.wire import job_to_wire
from workers.client import (
    JobStreamFollower,
    TerminalView,
    Verdict,
    apply_event,
    event_note,
    exit_status,
    progress_line,
)

JOB_ID = "00000000-0000-4000-8000-0000000000aa"
OTHER_ID = "00000000-0000-4000-8000-0000000000bb"
NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def snapshot(seq: int, *, epoch: str = "e1", **fields: Any) -> dict[str, Any]:
    job = JobRecord(
        id=JOB_ID,
        user_id="alice",
        type="research",
        created_at=NOW,
        updated_at=NOW,
        seq=seq,
        epoch=epoch,
        **fields,
    )
    return job_to_wire(job)


def event(
    seq: int, kind: str = "job:progress", *, epoch: str = "e1", job_id: str = JOB_ID, **data: Any
) -> dict[str, Any]:
    if kind == "job:progress" and not data:
        data = {"progress": float(seq), "step": f"step {seq}"}
    return {
        "job_id": job_id,
        "user_id": "alice",
        "seq": seq,
        "epoch": epoch,
        "type": kind,
        "at": "2026-11-22T10:00:05Z",
        "data": data,
    }


def following(seq: int = 3, **fields: Any) -> JobStreamFollower:
    follower = JobStreamFollower(JOB_ID)
    follower.on_subscribed(
        {"job": snapshot(seq, state=JobState.RUNNING, **fields), "events": [], "recovered": False}
    )
    return follower


# -- the follower ---------------------------------------------------------------------------


def test_first_subscribe_asks_for_the_snapshot_and_starts_from_it() -> None:
    follower = JobStreamFollower(JOB_ID)
    assert follower.subscribe_payload() == {"job_id": JOB_ID}

    follower.on_subscribed({"job": snapshot(7), "events": [], "recovered": False})

    assert follower.last_seq == 7
    assert follower.subscribe_payload() == {"job_id": JOB_ID, "after_seq": 7, "epoch": "e1"}


def test_events_before_any_snapshot_are_left_for_the_subscribe() -> None:
    assert JobStreamFollower(JOB_ID).on_event(event(1)) is Verdict.EARLY


def test_next_event_is_applied() -> None:
    follower = following(3)

    assert follower.on_event(event(4, progress=42.5, step="step 2/5: fetching")) is Verdict.APPLIED

    assert follower.job is not None
    assert (follower.job.seq, follower.job.progress) == (4, 42.5)
    assert follower.job.step == "step 2/5: fetching"


@pytest.mark.parametrize("seq", [1, 3])
def test_seen_events_are_dropped(seq: int) -> None:
    follower = following(3, progress=30.0)

    assert follower.on_event(event(seq, progress=99.0)) is Verdict.DUPLICATE

    assert follower.job is not None
    assert (follower.job.seq, follower.job.progress) == (3, 30.0)


def test_a_gap_asks_for_a_resync_from_the_cursor() -> None:
    follower = following(3)

    assert follower.on_event(event(5)) is Verdict.RESYNC

    assert follower.last_seq == 3
    assert follower.subscribe_payload() == {"job_id": JOB_ID, "after_seq": 3, "epoch": "e1"}


def test_another_epoch_asks_for_a_resync() -> None:
    assert following(3).on_event(event(4, epoch="e2")) is Verdict.RESYNC


def test_other_jobs_events_are_ignored() -> None:
    follower = following(3)

    assert follower.on_event(event(4, job_id=OTHER_ID)) is Verdict.OTHER_JOB
    assert follower.last_seq == 3


def test_recovered_replay_fills_the_gap_and_skips_what_was_seen() -> None:
    follower = following(3)
    assert follower.on_event(event(4)) is Verdict.APPLIED

    applied = follower.on_subscribed(
        {"job": snapshot(6), "events": [event(4), event(5), event(6)], "recovered": True}
    )

    assert [e["seq"] for e in applied] == [5, 6]
    assert follower.last_seq == 6
    assert follower.snapshots == 1
    # A live event that raced the replay is now a duplicate.
    assert follower.on_event(event(6)) is Verdict.DUPLICATE
    assert follower.on_event(event(7)) is Verdict.APPLIED


def test_unrecovered_replay_restarts_from_the_snapshot() -> None:
    follower = following(3)

    applied = follower.on_subscribed(
        {"job": snapshot(250, progress=80.0), "events": [], "recovered": False}
    )

    assert applied == []
    assert follower.job is not None
    assert (follower.job.seq, follower.job.progress) == (250, 80.0)
    assert follower.snapshots == 2


def test_a_new_epoch_in_the_snapshot_replaces_the_view() -> None:
    follower = following(9)

    follower.on_subscribed({"job": snapshot(2, epoch="e2"), "events": [], "recovered": True})

    assert (follower.last_seq, follower.epoch) == (2, "e2")


def test_a_replay_with_a_hole_falls_back_to_the_snapshot() -> None:
    follower = following(3)

    follower.on_subscribed({"job": snapshot(6), "events": [event(4), event(6)], "recovered": True})

    assert follower.last_seq == 6
    assert follower.snapshots == 2


def test_events_drive_the_state_machine() -> None:
    job = JobStreamFollower(JOB_ID)
    job.on_subscribed({"job": snapshot(1), "events": [], "recovered": False})
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
    base = JobRecord(
        id=JOB_ID, user_id="u", type="t", created_at=NOW, updated_at=NOW, epoch="e1", seq=1
    )
    error = {"code": "handler_error", "message": "boom", "retryable": False}

    failed = apply_event(base, event(2, "job:failed", error=error))
    restarted = apply_event(failed, event(3, "job:restarted"))

    assert failed.state is JobState.FAILED
    assert failed.error is not None
    assert failed.error.message == "boom"
    assert exit_status(failed) == 1
    assert restarted.state is JobState.CREATED
    assert restarted.error is None


# -- rendering ------------------------------------------------------------------------------


def test_progress_line() -> None:
    job = JobRecord(
        id=JOB_ID,
        user_id="u",
        type="research",
        created_at=NOW,
        updated_at=NOW,
        epoch="e1",
        state=JobState.RUNNING,
        progress=42.5,
        step="step 2/5: fetching sources",
    )

    assert progress_line(job, width=10) == (
        "[####......] 42.5% step 2/5: fetching sources  state=running"
    )
    assert len(progress_line(job, width=10, max_length=30)) == 30


def test_terminal_view_redraws_the_bar_and_prints_state_changes_on_their_own_line() -> None:
    out = io.StringIO()
    view = TerminalView(out, width=4)
    job = JobRecord(
        id=JOB_ID,
        user_id="u",
        type="t",
        created_at=NOW,
        updated_at=NOW,
        epoch="e1",
        state=JobState.RUNNING,
        attempt=1,
    )

    view.show(job)
    view.show(job.evolve(progress=50.0, step="step 1/2: a"))
    view.show(job.evolve(state=JobState.COMPLETED, progress=100.0, result={"ok": 1}))

    assert out.getvalue() == (
        "running (attempt 1)\n"
        "\r[....] 0.0%  state=running"
        "\r[##..] 50.0% step 1/2: a  state=running"
        "\ncompleted: result={'ok': 1}\n"
    )


RECOVERY = {
    "job_id": JOB_ID,
    "state": "paused",
    "resumable": True,
    "restartable": False,
    "checkpoint": {"present": True, "progress": 35.0},
    "recovery_attempts": 1,
    "max_recovery_attempts": 3,
}


@pytest.mark.parametrize(
    ("kind", "data", "note"),
    [
        ("job:paused", {"reason": "stalled"}, "  its worker stopped sending heartbeats (stalled)"),
        ("job:paused", {"reason": "user"}, "  paused at a user's request"),
        (
            "job:recovery",
            RECOVERY,
            f"  resumable from its checkpoint at 35.0% (recovery 1 of 3): "
            f"POST /api/jobs/{JOB_ID}/resume continues it",
        ),
        (
            "job:recovery",
            {**RECOVERY, "resumable": False, "restartable": True, "recovery_attempts": 3},
            f"  not resumable (recovery 3 of 3): POST /api/jobs/{JOB_ID}/restart starts it again",
        ),
        ("job:recovery", {"resumable": False}, "  not recoverable"),
        ("job:resumed", {}, "  resumed: waiting for a worker to continue from the checkpoint"),
        ("job:restarted", {}, "  restarted: waiting for a worker to start from scratch"),
        ("job:progress", {"progress": 1.0}, None),
        ("job:completed", {"result": None}, None),
    ],
)
def test_event_notes_say_why_a_job_paused_and_how_to_go_on(
    kind: str, data: dict[str, Any], note: str | None
) -> None:
    assert event_note(event(7, kind, **data)) == note


def test_terminal_view_messages_take_the_bar_s_place_and_the_bar_is_drawn_below() -> None:
    out = io.StringIO()
    view = TerminalView(out, width=4)
    job = JobRecord(
        id=JOB_ID,
        user_id="u",
        type="t",
        created_at=NOW,
        updated_at=NOW,
        epoch="e1",
        state=JobState.PAUSED,
        progress=50.0,
    )

    view.message("before any bar")
    view.show(job)
    view.message("  stalled")
    view.message("  resumable")

    bar = "[##..] 50.0%  state=paused"
    assert out.getvalue() == (
        "before any bar\n"
        "paused\n"
        f"\r{bar}"
        f"\r{'  stalled'.ljust(len(bar))}\n{bar}"
        f"\r{'  resumable'.ljust(len(bar))}\n{bar}"
    )
