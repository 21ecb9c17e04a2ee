"""The change a claim applies to the chosen job, shared by every store."""

from __future__ import annotations

from jobspine_shared.events import EventType
from jobspine_shared.states import JobState
from server.store.model import NOW, EventSpec, JobChange, StoredJob


def claim_change(job: StoredJob, *, worker_id: str, lease: str) -> JobChange:
    """Start a new attempt under ``lease``; a resumed one starts at its checkpoint's progress."""
    resumed = job.checkpoint is not None
    progress = job.checkpoint.progress if job.checkpoint is not None else 0.0
    return JobChange(
        action="claim",
        from_states=frozenset({JobState.CREATED}),
        to_state=JobState.RUNNING,
        fields={
            "progress": progress,
            "step": job.record.step if resumed else None,
            "started_at": NOW,
            "last_heartbeat_at": NOW,
        },
        increments={"attempt": 1},
        new_lease=lease,
        worker_id=worker_id,
        events=(
            EventSpec(
                type=EventType.STARTED,
                data=lambda changed: {
                    "attempt": changed.record.attempt,
                    "worker_id": worker_id,
                    "resumed": resumed,
                },
            ),
        ),
    )
