"""The job rules every store applies identically: conditions of a change and what it implies."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import attrs

from jobspine_shared.models import JobEvent, JobRecord
from jobspine_shared.states import ENDED_STATES, JobState, can_transition
from server.errors import (
    InvalidProgress,
    InvalidTransition,
    JobspineError,
    LeaseLost,
    NotFound,
    NotStale,
)
from server.store.model import (
    CLEAR_CHECKPOINT,
    NOW,
    CheckpointWrite,
    EventSpec,
    JobChange,
    Later,
    StoredJob,
    job_event,
)

#: An event's data as a store keeps it, from its spec and the changed job.
EventRenderer = Callable[[EventSpec, StoredJob], dict[str, Any]]


def check_change(change: JobChange) -> None:
    """Refuse a change that would break the contract's transition table (a programming error)."""
    if change.to_state is None:
        return
    for source in change.from_states:
        if not can_transition(source, change.to_state):
            raise AssertionError(f"{change.action}: {source} -> {change.to_state} is not allowed")


def refusal(job: StoredJob | None, change: JobChange, now: datetime) -> JobspineError | None:
    """Why ``change`` cannot apply to ``job`` now, or None when it can.

    The order matters: a fenced call learns first that its lease is gone.
    """
    if job is None:
        return NotFound()
    state = job.record.state
    if change.lease is not None and (state is not JobState.RUNNING or job.lease != change.lease):
        return LeaseLost(details={"state": str(state), "job_id": job.record.id})
    if state not in change.from_states:
        return InvalidTransition(
            f"cannot {change.action} a job that is {state}",
            details={"state": str(state), "action": change.action},
        )
    if change.require_pause_requested and not job.record.pause_requested:
        return InvalidTransition(
            f"cannot {change.action}: no pause was requested",
            details={"state": str(state), "action": change.action},
        )
    if change.progress_at_most is not None and job.record.progress > change.progress_at_most:
        return InvalidProgress(
            f"progress may not go down within an attempt (now {job.record.progress})",
            details={"progress": job.record.progress},
        )
    if change.stale_after_s is not None:
        beat = job.record.last_heartbeat_at
        if beat is not None and beat >= now - timedelta(seconds=change.stale_after_s):
            return NotStale(details={"state": str(state)})
    return None


def implied_fields(change: JobChange) -> dict[str, Any]:
    """Fields every change sets besides its own: the state, ``updated_at``, and what leaving
    ``running`` clears."""
    fields: dict[str, Any] = {"updated_at": NOW}
    if change.to_state is not None:
        fields["state"] = change.to_state
        if change.to_state is not JobState.RUNNING:
            fields["pause_requested"] = False
    fields.update(change.fields)
    return fields


def clears_lease(change: JobChange) -> bool:
    return change.to_state is not None and change.to_state is not JobState.RUNNING


def _at(value: Any, now: datetime) -> Any:
    if value is NOW:
        return now
    if isinstance(value, Later):
        return now + timedelta(seconds=value.seconds)
    return value


def finished_at(record: JobRecord) -> datetime | None:
    """When a job in a final state reached it (retention counts from there); None otherwise."""
    return {
        JobState.COMPLETED: record.completed_at,
        JobState.FAILED: record.failed_at,
        JobState.CANCELLED: record.cancelled_at,
    }.get(record.state)


#: States a job can be deleted in (``DELETE /api/jobs/{id}``, retention).
DELETABLE_STATES: frozenset[JobState] = ENDED_STATES

#: States a job counts as active in, until it ends (``MAX_ACTIVE_JOBS_PER_USER``): created,
#: running, paused. In the order of :class:`JobState`, so a statement built from them has
#: one text.
ACTIVE_STATES: tuple[JobState, ...] = tuple(s for s in JobState if s not in ENDED_STATES)


def claimable(record: JobRecord, now: datetime) -> bool:
    """Created, and its ``run_at`` (if any) reached."""
    return record.state is JobState.CREATED and (record.run_at is None or record.run_at <= now)


def claim_order(record: JobRecord) -> tuple[int, datetime, str]:
    """Claims take the smallest key first: highest priority, then the oldest."""
    return (-record.priority, record.created_at, record.id)


def apply_in_memory(job: StoredJob, change: JobChange, now: datetime) -> StoredJob:
    """The job after ``change`` (conditions already checked), events not yet appended."""
    values = {k: _at(v, now) for k, v in implied_fields(change).items()}
    for name, amount in change.increments.items():
        values[name] = getattr(job.record, name) + amount
    values["seq"] = job.record.seq + len(change.events)
    lease, worker_id, checkpoint = job.lease, job.worker_id, job.checkpoint
    if change.new_lease is not None:
        lease, worker_id = change.new_lease, change.worker_id
    elif clears_lease(change):
        lease = None
    if change.checkpoint == CLEAR_CHECKPOINT:
        checkpoint = None
        values.update(has_checkpoint=False, checkpoint_at=None)
    elif isinstance(change.checkpoint, CheckpointWrite):
        job_progress = values.get("progress", job.record.progress)
        checkpoint = change.checkpoint.saved(now, job_progress)
        values.update(has_checkpoint=True, checkpoint_at=now)
    return attrs.evolve(
        job,
        record=job.record.evolve(**values),
        lease=lease,
        worker_id=worker_id,
        checkpoint=checkpoint,
    )


def change_events(
    job: StoredJob,
    specs: Sequence[EventSpec],
    at: datetime,
    render: EventRenderer = EventSpec.render,
) -> tuple[JobEvent, ...]:
    """The events of a change, numbered up to the changed job's new seq (the change moved
    it by one an event), their data rendered from the changed job."""
    record = job.record
    first = record.seq - len(specs) + 1
    return tuple(
        job_event(record, seq=first + i, type=spec.type, at=at, data=render(spec, job))
        for i, spec in enumerate(specs)
    )
