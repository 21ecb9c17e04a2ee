"""The job record (schema v1) and the event envelope, as frozen keyword-only attrs classes."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import attrs

from jobspine_shared.events import EventType
from jobspine_shared.states import JobState

SCHEMA_VERSION = 1

JOB_TYPE_PATTERN = re.compile(r"[a-z0-9_.-]{1,64}")
MAX_STEP_LENGTH = 256
MAX_ERROR_MESSAGE_LENGTH = 4096
MAX_ERROR_CODE_LENGTH = 64

JsonObject = dict[str, Any]


@attrs.frozen(kw_only=True)
class JobError:
    """Why a job failed: ``{code, message, retryable}``."""

    code: str
    message: str
    retryable: bool = False


@attrs.frozen(kw_only=True)
class JobRecord:
    """A job as clients see it: every field of the contract's snapshot, nothing more.

    Server-side bookkeeping (the lease, the checkpoint itself) is not part of the record.
    """

    id: str
    user_id: str
    type: str
    input: JsonObject = attrs.field(factory=dict)
    state: JobState = JobState.CREATED
    progress: float = 0.0
    step: str | None = None
    result: Any = None
    error: JobError | None = None
    has_checkpoint: bool = False
    checkpoint_at: datetime | None = None
    attempt: int = 0
    recovery_attempts: int = 0
    pause_requested: bool = False
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    paused_at: datetime | None = None
    completed_at: datetime | None = None
    failed_at: datetime | None = None
    cancelled_at: datetime | None = None
    last_heartbeat_at: datetime | None = None
    seq: int = 0
    epoch: str
    schema_version: int = SCHEMA_VERSION

    def evolve(self, **changes: Any) -> JobRecord:
        return attrs.evolve(self, **changes)


@attrs.frozen(kw_only=True)
class JobEvent:
    """One entry of a job's event stream; its Socket.IO event name is ``type``."""

    job_id: str
    user_id: str
    seq: int
    epoch: str
    type: EventType
    at: datetime
    data: JsonObject = attrs.field(factory=dict)
