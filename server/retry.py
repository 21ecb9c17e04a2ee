"""Automatic retries (contract v2, "Timeouts and automatic retries"), as changes.

A retryable failure of a job with attempts left sends it back to ``created`` with
``run_at = now + backoff``, ``retries`` + 1, the error kept and its checkpoint kept (the next
attempt resumes from it), appending ``job:retrying``; any other failure fails the job as in
v1. The attempts counted against ``retry.max_attempts`` are those of this run: ``retries + 1``
(a claim that resumes a paused job also counts in the snapshot's ``attempt``, but is no new
try; docs/protocol.md).
"""

from __future__ import annotations

from typing import Any

import attrs

from jobspine_shared.events import EventType
from jobspine_shared.models import JobError, JobRecord
from jobspine_shared.states import JobState
from jobspine_shared.wire import format_time
from server.store.model import NOW, AuditWrite, EventSpec, JobChange, Later, StoredJob

#: The error of an attempt that ran past its ``timeout_s``.
TIMEOUT_CODE = "timeout"


def attempts_left(record: JobRecord) -> bool:
    return record.retries + 1 < record.retry.max_attempts


def will_retry(record: JobRecord, error: JobError) -> bool:
    return error.retryable and attempts_left(record)


def _retrying_data(error: dict[str, Any]) -> Any:
    def render(changed: StoredJob) -> dict[str, Any]:
        run_at = changed.record.run_at
        return {
            "error": error,
            "attempt": changed.record.attempt,
            "run_at": format_time(run_at) if run_at else None,
        }

    return render


def failure_change(
    record: JobRecord,
    error: dict[str, Any],
    *,
    lease: str,
    stale_after_s: float | None = None,
    audit: AuditWrite | None = None,
) -> JobChange:
    """The change a failure under ``lease`` applies: a retry or the final failure.

    ``record`` is the job as read under that lease; its retry policy and ``retries`` cannot
    change while the lease holds, so the decision stays true when the fenced change applies.
    """
    job_error = JobError(**error)
    failure = JobChange(
        action="fail",
        from_states=frozenset({JobState.RUNNING}),
        to_state=JobState.FAILED,
        lease=lease,
        stale_after_s=stale_after_s,
        fields={"error": job_error, "failed_at": NOW},
        events=(EventSpec(type=EventType.FAILED, data={"error": error}),),
        audit=audit,
    )
    if not will_retry(record, job_error):
        return failure
    # The same fence and audit; back to created, later, with one more retry counted.
    return attrs.evolve(
        failure,
        action="retry",
        to_state=JobState.CREATED,
        fields={"error": job_error, "run_at": Later(record.retry.backoff_after(record.retries))},
        increments={"retries": 1},
        events=(EventSpec(type=EventType.RETRYING, data=_retrying_data(error)),),
    )


def timeout_error(record: JobRecord) -> dict[str, Any]:
    return {
        "code": TIMEOUT_CODE,
        "message": f"the attempt ran longer than its timeout of {record.timeout_s:g} s",
        "retryable": True,
    }


__all__ = ["TIMEOUT_CODE", "attempts_left", "failure_change", "timeout_error", "will_retry"]
