"""The job record (schema v2) and the event envelope, as frozen keyword-only attrs classes."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import attrs

from jobspine_shared.events import EventType
from jobspine_shared.states import JobState

SCHEMA_VERSION = 2

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
class RetryPolicy:
    """Automatic retries of retryable failures (contract v2): the n-th retry waits
    ``min(max_backoff_s, backoff_s * backoff_factor ** n)`` seconds (n counts from 0)."""

    max_attempts: int = 1
    backoff_s: float = 5.0
    backoff_factor: float = 2.0
    max_backoff_s: float = 300.0

    def backoff_after(self, retries: int) -> float:
        """Seconds to wait before the retry that follows ``retries`` earlier retries."""
        try:
            delay = self.backoff_s * self.backoff_factor**retries
        except OverflowError:
            return self.max_backoff_s
        return min(self.max_backoff_s, delay)


DEFAULT_RETRY = RetryPolicy()


@attrs.frozen(kw_only=True)
class JobSpec:
    """What a create asks for: the snapshot fields a client sets (contract v2), which the
    job's record keeps as they were given."""

    type: str
    input: JsonObject = attrs.field(factory=dict)
    priority: int = 0
    run_at: datetime | None = None
    tags: tuple[str, ...] = ()
    parent_id: str | None = None
    timeout_s: float | None = None
    retry: RetryPolicy = DEFAULT_RETRY
    idempotency_key: str | None = None
    correlation_id: str | None = None

    def same_request(self, other: JobSpec) -> bool:
        """Whether ``other`` (an earlier job with this idempotency key) asked for the same."""
        return self.type == other.type and self.input == other.input

    def values(self) -> dict[str, Any]:
        """The spec's fields by name (a record's fields, for a new job's record)."""
        return {name: getattr(self, name) for name in _SPEC_FIELDS}


_SPEC_FIELDS = tuple(field.name for field in attrs.fields(JobSpec))


@attrs.frozen(kw_only=True)
class JobRecord(JobSpec):
    """A job as clients see it: every field of the contract's snapshot, nothing more: the
    spec it was created with, and what has become of it since.

    Server-side bookkeeping (the lease, the checkpoint itself) is not part of the record.
    """

    id: str
    user_id: str
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
    retries: int = 0
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
