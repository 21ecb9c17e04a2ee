"""Recovery options of a job: what a user can do with a paused or failed job."""

from __future__ import annotations

from typing import Any

import attrs

from jobspine_shared.models import JobRecord
from jobspine_shared.states import RESTARTABLE_STATES, RESUMABLE_STATES
from jobspine_shared.wire import format_time
from server.store.model import CheckpointInfo, StoredJob

#: At most this many top-level checkpoint keys are listed.
MAX_LISTED_KEYS = 100


@attrs.frozen(kw_only=True)
class RecoveryOptions:
    job: JobRecord
    checkpoint: CheckpointInfo | None
    max_recovery_attempts: int

    @property
    def resumable(self) -> bool:
        # From the transition table, not a list of states of its own (issue 12).
        return self.job.state in RESUMABLE_STATES

    @property
    def restartable(self) -> bool:
        return self.job.state in RESTARTABLE_STATES

    @property
    def recovery_attempts_left(self) -> int:
        return max(0, self.max_recovery_attempts - self.job.recovery_attempts)


def recovery_options(job: StoredJob, *, max_recovery_attempts: int) -> RecoveryOptions:
    return RecoveryOptions(
        job=job.record, checkpoint=job.checkpoint, max_recovery_attempts=max_recovery_attempts
    )


def recovery_options_to_wire(options: RecoveryOptions) -> dict[str, Any]:
    """The ``job:recovery`` ack's ``options``, ``GET …/recovery`` and the ``job:recovery``
    event's data."""
    record, checkpoint = options.job, options.checkpoint
    return {
        "job_id": record.id,
        "state": str(record.state),
        "resumable": options.resumable,
        "restartable": options.restartable,
        "checkpoint": {
            "present": checkpoint is not None,
            "size_bytes": checkpoint.size_bytes if checkpoint else None,
            "keys": list(checkpoint.keys[:MAX_LISTED_KEYS]) if checkpoint else [],
            "saved_at": format_time(checkpoint.saved_at) if checkpoint else None,
            "progress": checkpoint.progress if checkpoint else None,
        },
        "recovery_attempts": record.recovery_attempts,
        "max_recovery_attempts": options.max_recovery_attempts,
        "recovery_attempts_left": options.recovery_attempts_left,
    }


__all__ = ["MAX_LISTED_KEYS", "RecoveryOptions", "recovery_options", "recovery_options_to_wire"]
