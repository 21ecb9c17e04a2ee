"""Recovery options of a job: what a user can do with a paused or failed job."""

from __future__ import annotations

from typing import Any

from jobspine_shared.states import RESTARTABLE_STATES, RESUMABLE_STATES
from jobspine_shared.wire import format_time
from server.store.model import StoredJob

#: At most this many top-level checkpoint keys are listed.
MAX_LISTED_KEYS = 100


def recovery_options(job: StoredJob, *, max_recovery_attempts: int) -> dict[str, Any]:
    record, checkpoint = job.record, job.checkpoint
    return {
        "job_id": record.id,
        "state": str(record.state),
        # From the transition table, not a list of states of its own (issue 12).
        "resumable": record.state in RESUMABLE_STATES,
        "restartable": record.state in RESTARTABLE_STATES,
        "checkpoint": {
            "present": checkpoint is not None,
            "size_bytes": checkpoint.size_bytes if checkpoint else None,
            "keys": list(checkpoint.keys[:MAX_LISTED_KEYS]) if checkpoint else [],
            "saved_at": format_time(checkpoint.saved_at) if checkpoint else None,
            "progress": checkpoint.progress if checkpoint else None,
        },
        "recovery_attempts": record.recovery_attempts,
        "max_recovery_attempts": max_recovery_attempts,
        "recovery_attempts_left": max(0, max_recovery_attempts - record.recovery_attempts),
    }
