"""The change a claim applies to the chosen job, shared by every store."""

from __future__ import annotations

from jobspine_shared.events import EventType
from jobspine_shared.states import JobState
from server.store.model import NOW, CheckpointInfo, EventSpec, JobChange, StoredJob

#: The attempt number of a job never claimed.
UNCLAIMED_ATTEMPT = 0


def claim_change(job: StoredJob, *, worker_id: str, lease: str) -> JobChange:
    """Start a new attempt under ``lease``; a resumed one starts at its checkpoint's progress.

    ``job`` is the claimed job as it is (both stores hold it while they claim: the memory
    store's lock, the Postgres row lock), so its next attempt number is known here and the
    ``job:started`` event's data is fixed before the write (Postgres writes the claim as one
    statement)."""
    return _claim_of(
        job.record.attempt, job.checkpoint, job.record.step, worker_id=worker_id, lease=lease
    )


def is_first_claim(job: StoredJob) -> bool:
    """Whether ``job`` was never claimed and holds no checkpoint: the common case, whose
    claim is :func:`first_claim_change` (known before the job is chosen, so Postgres
    chooses and claims such a job in one statement)."""
    return job.record.attempt == UNCLAIMED_ATTEMPT and job.checkpoint is None


def first_claim_change(*, worker_id: str, lease: str) -> JobChange:
    """:func:`claim_change` of every job :func:`is_first_claim` holds for."""
    return _claim_of(UNCLAIMED_ATTEMPT, None, None, worker_id=worker_id, lease=lease)


def _claim_of(
    attempt_before: int,
    checkpoint: CheckpointInfo | None,
    step: str | None,
    *,
    worker_id: str,
    lease: str,
) -> JobChange:
    resumed = checkpoint is not None
    attempt = attempt_before + 1
    return JobChange(
        action="claim",
        from_states=frozenset({JobState.CREATED}),
        to_state=JobState.RUNNING,
        fields={
            "progress": checkpoint.progress if checkpoint is not None else 0.0,
            "step": step if resumed else None,
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
