"""The terminal watcher's pure parts: the progress line, event notes, redraws, exit status."""

from __future__ import annotations

import io
from typing import Any

import pytest

from jobspine_client.fold import apply_event
from jobspine_shared.states import JobState
from tests.support.wire_samples import JOB_ID, event, record
from workers.client import TerminalView, event_note, exit_status, progress_line


def test_exit_status_of_a_failure_and_a_restart() -> None:
    base = record(1)
    failed = apply_event(base, event(2, "job:failed", error={"code": "x", "message": "boom"}))
    completed = apply_event(base, event(2, "job:completed", result=1))

    assert exit_status(failed) == 1
    assert exit_status(completed) == 0
    assert exit_status(apply_event(failed, event(3, "job:restarted"))) == 3


# -- rendering ------------------------------------------------------------------------------


def test_progress_line() -> None:
    job = record(0, state=JobState.RUNNING, progress=42.5, step="step 2/5: fetching sources")

    assert progress_line(job, width=10) == (
        "[####......] 42.5% step 2/5: fetching sources  state=running"
    )
    assert len(progress_line(job, width=10, max_length=30)) == 30


def test_terminal_view_redraws_the_bar_and_prints_state_changes_on_their_own_line() -> None:
    out = io.StringIO()
    view = TerminalView(out, width=4)
    job = record(0, state=JobState.RUNNING, attempt=1)

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
    job = record(0, state=JobState.PAUSED, progress=50.0)

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
