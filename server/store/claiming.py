"""The change a claim applies to the chosen job, shared by every store."""

from __future__ import annotations

from jobspine_shared.events import EventType
from jobspine_shared.states import JobState
from server.store.model import NOW, EventSpec, JobChange, StoredJob


def claim_change(job: StoredJob, *, worker_id: str, lease: str) -> JobChange:
    """Start a new attempt under ``lease``; a resumed one starts at its checkpoint's progress.

    ``job`` is the claimed job as it is (both stores hold it while they claim: the memory
    store's lock, the Postgres row lock), so its next attempt number is known here and the
    ``job:started`` event's data is fixed before the write (Postgres writes the claim as one
    statement)."""
    resumed = job.checkpoint is not None
    attempt = job.record.attempt + 1
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
            "attempt": attempt,
        },
        new_lease=lease,
        worker_id=worker_id,
        events=(
            EventSpec(
                type=EventType.STARTED,
                data={"attempt": attempt, "worker_id": worker_id, "resumed": resumed},
            ),
        ),
    )
