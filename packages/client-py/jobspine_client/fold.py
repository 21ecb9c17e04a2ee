"""The fold: how one event changes a job, written once for Python.

:func:`apply_event` takes the job before an event (one ``seq`` behind it) and returns the job
after it, as far as events tell. :data:`FOLDED_FIELDS` names, per event type, the snapshot
fields the event determines; the conformance suite (``tests/conformance/``) proves, on event
streams recorded from a real server on both stores, that after each event these fields equal
the server's snapshot. Fields an event does not determine (``last_heartbeat_at`` after
the claim, a restart's new ``input``, a resumed claim's progress…) keep their previous value
until the next snapshot.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from jobspine_shared.events import EventType
from jobspine_shared.models import JobError, JobRecord
from jobspine_shared.states import JobState
from jobspine_shared.wire import job_from_wire, parse_time

#: Fields every event determines.
ALWAYS = ("seq", "epoch", "updated_at")

#: Snapshot fields each event type determines (beside :data:`ALWAYS`).
FOLDED_FIELDS: dict[EventType, tuple[str, ...]] = {
    EventType.CREATED: ("*",),  # the event carries the whole snapshot
    EventType.STARTED: ("state", "attempt", "pause_requested", "started_at", "last_heartbeat_at"),
    EventType.PROGRESS: ("progress", "step"),
    EventType.CHECKPOINT: ("has_checkpoint", "checkpoint_at"),
    EventType.PAUSE_REQUESTED: ("pause_requested",),
    EventType.PAUSED: ("state", "pause_requested", "paused_at"),
    EventType.RECOVERY: ("state", "recovery_attempts", "has_checkpoint"),
    EventType.RESUMED: ("state", "paused_at", "has_checkpoint"),
    EventType.COMPLETED: ("state", "result", "progress", "error", "completed_at"),
    EventType.FAILED: ("state", "error", "failed_at"),
    EventType.CANCELLED: ("state", "cancelled_at", "pause_requested"),
    EventType.RESTARTED: (
        "state",
        "progress",
        "step",
        "result",
        "error",
        "has_checkpoint",
        "checkpoint_at",
        "recovery_attempts",
        "retries",
        "run_at",
        "started_at",
        "paused_at",
        "completed_at",
        "failed_at",
        "cancelled_at",
        "last_heartbeat_at",
    ),
    EventType.RETRYING: ("state", "error", "run_at", "retries", "pause_requested"),
}


def _data(event: Mapping[str, Any]) -> Mapping[str, Any]:
    raw = event.get("data")
    return raw if isinstance(raw, Mapping) else {}


def _time(value: Any) -> datetime | None:
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return parse_time(value)
    return None


def _error(value: Any) -> JobError | None:
    if not isinstance(value, Mapping):
        return None
    return JobError(
        code=str(value.get("code", "")),
        message=str(value.get("message", "")),
        retryable=bool(value.get("retryable", False)),
    )


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _changes(kind: Any, data: Mapping[str, Any], job: JobRecord, at: datetime) -> dict[str, Any]:
    """The fields ``kind`` sets, from its data and time."""
    S = JobState
    if kind == EventType.STARTED:
        changes: dict[str, Any] = {
            "state": S.RUNNING,
            "pause_requested": False,
            "started_at": at,
            "last_heartbeat_at": at,  # a claim counts as a heartbeat
        }
        if isinstance(data.get("attempt"), int):
            changes["attempt"] = data["attempt"]
        return changes
    if kind == EventType.PROGRESS:
        progress = _number(data.get("progress"))
        step = data.get("step")
        return {
            "progress": job.progress if progress is None else progress,
            "step": step if isinstance(step, str) else None,
        }
    if kind == EventType.CHECKPOINT:
        changes = {"has_checkpoint": True, "checkpoint_at": at}
        progress = _number(data.get("progress"))
        if progress is not None:
            changes["progress"] = progress
        return changes
    if kind == EventType.PAUSE_REQUESTED:
        return {"pause_requested": True}
    if kind == EventType.PAUSED:
        return {"state": S.PAUSED, "pause_requested": False, "paused_at": at}
    if kind == EventType.RECOVERY:
        changes = {"state": S.PAUSED}
        if isinstance(data.get("recovery_attempts"), int):
            changes["recovery_attempts"] = data["recovery_attempts"]
        checkpoint = data.get("checkpoint")
        if isinstance(checkpoint, Mapping) and isinstance(checkpoint.get("present"), bool):
            changes["has_checkpoint"] = checkpoint["present"]
        return changes
    if kind == EventType.RESUMED:
        changes = {"state": S.CREATED, "paused_at": None}
        if isinstance(data.get("has_checkpoint"), bool):
            changes["has_checkpoint"] = data["has_checkpoint"]
        return changes
    if kind == EventType.COMPLETED:
        return {
            "state": S.COMPLETED,
            "result": data.get("result"),
            "progress": 100.0,
            "error": None,
            "completed_at": at,
        }
    if kind == EventType.FAILED:
        return {"state": S.FAILED, "error": _error(data.get("error")), "failed_at": at}
    if kind == EventType.CANCELLED:
        return {"state": S.CANCELLED, "cancelled_at": at, "pause_requested": False}
    if kind == EventType.RESTARTED:
        return {
            "state": S.CREATED, "progress": 0.0, "step": None, "result": None, "error": None,
            "has_checkpoint": False, "checkpoint_at": None, "recovery_attempts": 0,
            "retries": 0, "run_at": None, "started_at": None, "paused_at": None,
            "completed_at": None, "failed_at": None, "cancelled_at": None,
            "last_heartbeat_at": None,
        }  # fmt: skip
    if kind == EventType.RETRYING:
        return {
            "state": S.CREATED,
            "error": _error(data.get("error")),
            "run_at": _time(data.get("run_at")),
            "retries": job.retries + 1,
            "pause_requested": False,
        }
    return {}  # a type this client does not know: only seq and updated_at move


def apply_event(job: JobRecord, event: Mapping[str, Any]) -> JobRecord:
    """The job after ``event``, which must be the next one of its stream."""
    data = _data(event)
    if event.get("type") == EventType.CREATED and isinstance(data.get("job"), Mapping):
        return job_from_wire(data["job"])
    at = _time(event.get("at")) or job.updated_at
    changes = _changes(event.get("type"), data, job, at)
    changes.update(seq=event["seq"], updated_at=at)
    if isinstance(event.get("epoch"), str):
        changes["epoch"] = event["epoch"]
    return job.evolve(**changes)


def folded_fields(kind: str) -> tuple[str, ...]:
    """The snapshot fields an event of type ``kind`` determines (``("*",)``: all)."""
    try:
        own = FOLDED_FIELDS[EventType(kind)]
    except ValueError:
        own = ()
    return own if own == ("*",) else ALWAYS + own


__all__ = ["ALWAYS", "FOLDED_FIELDS", "apply_event", "folded_fields"]
