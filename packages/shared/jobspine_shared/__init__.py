"""Schema, states, event names and wire formats shared by the jobspine server and its workers."""

from __future__ import annotations

from jobspine_shared.errors import ErrorCode
from jobspine_shared.events import EventType
from jobspine_shared.models import SCHEMA_VERSION, JobError, JobEvent, JobRecord, RetryPolicy
from jobspine_shared.states import TRANSITIONS, JobState, can_transition
from jobspine_shared.wire import (
    RecordValidationError,
    event_from_wire,
    event_to_wire,
    job_from_wire,
    job_to_wire,
    migrate_job_record,
    validate_job_record,
)

__all__ = [
    "SCHEMA_VERSION",
    "TRANSITIONS",
    "ErrorCode",
    "EventType",
    "JobError",
    "JobEvent",
    "JobRecord",
    "JobState",
    "RecordValidationError",
    "RetryPolicy",
    "can_transition",
    "event_from_wire",
    "event_to_wire",
    "job_from_wire",
    "job_to_wire",
    "migrate_job_record",
    "validate_job_record",
]
