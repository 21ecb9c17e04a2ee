"""A worker's progress report as a store change: the one definition both stores apply.

A report always updates the job's row (progress, step, heartbeat); whether it also appends a
``job:progress`` event is the caller's choice (:mod:`server.progress_gate`). Without the
event, ``seq`` does not move, so holding an event back never opens a gap in the stream.
"""

from __future__ import annotations

from typing import Any

import attrs

from jobspine_shared.events import EventType
from jobspine_shared.models import JobEvent
from server.store.model import NOW, EventSpec, JobChange, StoredJob


@attrs.frozen(kw_only=True)
class ProgressWrite:
    """A validated progress report under a lease; ``with_event``: append ``job:progress``."""

    lease: str
    progress: float
    step: str | None
    with_event: bool = True

    @property
    def event_data(self) -> dict[str, Any]:
        return {"progress": self.progress, "step": self.step}


@attrs.frozen(kw_only=True)
class ProgressResult:
    """What a stored report gives back: its ``job:progress`` event, none when held.

    Not the job: no caller uses it (the worker's ack is empty), and on Postgres reading the
    whole row back for every report cost more web CPU than the rest of the report."""

    events: tuple[JobEvent, ...]


def progress_event(write: ProgressWrite) -> EventSpec:
    """The ``job:progress`` event of a report."""
    return EventSpec(type=EventType.PROGRESS, data=write.event_data)


def progress_change(write: ProgressWrite) -> JobChange:
    """Running under the lease, progress not going down; sets progress, step and the
    heartbeat; the event when asked for."""
    return JobChange(
        action="progress",
        lease=write.lease,
        progress_at_most=write.progress,
        fields={"progress": write.progress, "step": write.step, "last_heartbeat_at": NOW},
        # (built only when asked for: most reports are held at the default limit)
        events=(progress_event(write),) if write.with_event else (),
    )


def _stored_progress(job: StoredJob) -> dict[str, Any]:
    return {"progress": job.record.progress, "step": job.record.step}


def trailing_progress_change(lease: str) -> JobChange:
    """The trailing event of held progress reports: the job's stored progress and step, as
    long as it still runs under the lease that reported them."""
    return JobChange(
        action="progress",
        lease=lease,
        events=(EventSpec(type=EventType.PROGRESS, data=_stored_progress),),
    )


__all__ = [
    "ProgressResult",
    "ProgressWrite",
    "progress_change",
    "progress_event",
    "trailing_progress_change",
]
