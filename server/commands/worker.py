"""Worker calls as commands: each ``/workers`` payload parsed once into a frozen record.

The checks run in the order the calls always made them, so the first bad field named in a
``validation_error`` stays the same. Limits that come from the configuration (checkpoint
and result sizes) are the service's: a parser only checks that a value is well formed.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import attrs

from server import validation
from server.validation import Payload

MAX_CLAIM_TYPES = 64
MAX_WORKER_ID_LENGTH = 128
MAX_LEASE_LENGTH = 128

ValueT = TypeVar("ValueT")


@attrs.frozen(kw_only=True)
class ClaimJobs:
    #: Job types the worker runs; empty for any type.
    types: tuple[str, ...]
    worker_id: str


@attrs.frozen(kw_only=True)
class LeaseCall:
    """A call about one job under the lease its claim returned (``heartbeat``; the other
    calls add their fields)."""

    job_id: str
    lease: str


@attrs.frozen(kw_only=True)
class ReportProgress(LeaseCall):
    progress: float
    step: str | None = None


@attrs.frozen(kw_only=True)
class Sized(Generic[ValueT]):
    """A well-formed JSON value with its compact UTF-8 JSON size, which the service bounds
    by the configuration's limits."""

    value: ValueT
    size_bytes: int


#: A checkpoint's data (``MAX_CHECKPOINT_BYTES`` bounds it).
CheckpointData = Sized[dict[str, Any]]


@attrs.frozen(kw_only=True)
class SaveCheckpoint(LeaseCall):
    checkpoint: CheckpointData
    progress: float | None = None


@attrs.frozen(kw_only=True)
class ReportPaused(LeaseCall):
    checkpoint: CheckpointData | None = None


@attrs.frozen(kw_only=True)
class CompleteJob(LeaseCall):
    #: Any JSON value (``MAX_INPUT_BYTES`` bounds it).
    result: Sized[Any]


@attrs.frozen(kw_only=True)
class FailJob(LeaseCall):
    #: ``{code, message, retryable}`` as the job's ``error`` will carry it.
    error: dict[str, Any]


def lease(value: object) -> str:
    if (
        not isinstance(value, str)
        or not 1 <= len(value) <= MAX_LEASE_LENGTH
        or not validation.is_storable_text(value)
    ):
        raise validation.invalid("lease", "must be the lease string the claim returned")
    return value


def checkpoint_data(value: object, field: str) -> CheckpointData:
    data = validation.json_object(value, field)
    return Sized(value=data, size_bytes=validation.encoded_size(data, field))


def parse_claim(payload: Payload, *, default_worker_id: str) -> ClaimJobs:
    """``claim``; without a ``worker_id`` the worker is named by its token's ``sub``."""
    types = payload.get("types")
    if types is None:
        types = []
    if not isinstance(types, list) or len(types) > MAX_CLAIM_TYPES:
        raise validation.invalid("types", f"must be a list of at most {MAX_CLAIM_TYPES} types")
    checked_types = tuple(validation.job_type(t, "types") for t in types)
    worker_id = payload.get("worker_id")
    if worker_id is None:
        worker_id = default_worker_id
    if not isinstance(worker_id, str) or not 1 <= len(worker_id) <= MAX_WORKER_ID_LENGTH:
        raise validation.invalid(
            "worker_id", f"must be a string of 1 to {MAX_WORKER_ID_LENGTH} characters"
        )
    validation.storable_text(worker_id, "worker_id")
    return ClaimJobs(types=checked_types, worker_id=worker_id)


def parse_heartbeat(payload: Payload) -> LeaseCall:
    return LeaseCall(
        job_id=validation.job_id(payload.get("job_id")), lease=lease(payload.get("lease"))
    )


def parse_progress(payload: Payload) -> ReportProgress:
    value = validation.progress(payload.get("progress"))
    step = validation.step(payload.get("step"))
    checked_lease = lease(payload.get("lease"))
    return ReportProgress(
        job_id=validation.job_id(payload.get("job_id")),
        lease=checked_lease,
        progress=value,
        step=step,
    )


def parse_checkpoint(payload: Payload) -> SaveCheckpoint:
    job_id = validation.job_id(payload.get("job_id"))
    checked_lease = lease(payload.get("lease"))
    data = checkpoint_data(payload.get("data"), "data")
    progress = payload.get("progress")
    return SaveCheckpoint(
        job_id=job_id,
        lease=checked_lease,
        checkpoint=data,
        progress=None if progress is None else validation.progress(progress),
    )


def parse_paused(payload: Payload) -> ReportPaused:
    job_id = validation.job_id(payload.get("job_id"))
    checked_lease = lease(payload.get("lease"))
    raw = payload.get("checkpoint")
    return ReportPaused(
        job_id=job_id,
        lease=checked_lease,
        checkpoint=None if raw is None else checkpoint_data(raw, "checkpoint"),
    )


def parse_complete(payload: Payload) -> CompleteJob:
    result = payload.get("result")
    size = validation.encoded_size(result, "result")
    checked_lease = lease(payload.get("lease"))
    return CompleteJob(
        job_id=validation.job_id(payload.get("job_id")),
        lease=checked_lease,
        result=Sized(value=result, size_bytes=size),
    )


def parse_fail(payload: Payload) -> FailJob:
    error = payload.get("error")
    if not isinstance(error, dict):
        raise validation.invalid("error", "must be an object {message, code?, retryable?}")
    retryable = error.get("retryable", False)
    if not isinstance(retryable, bool):
        raise validation.invalid("error.retryable", "must be a boolean")
    wire_error = {
        "code": validation.error_code(error.get("code")) or "job_failed",
        "message": validation.error_message(error.get("message")),
        "retryable": retryable,
    }
    return FailJob(
        job_id=validation.job_id(payload.get("job_id")),
        lease=lease(payload.get("lease")),
        error=wire_error,
    )


__all__ = [
    "MAX_CLAIM_TYPES",
    "CheckpointData",
    "ClaimJobs",
    "CompleteJob",
    "FailJob",
    "LeaseCall",
    "ReportPaused",
    "ReportProgress",
    "SaveCheckpoint",
    "Sized",
    "checkpoint_data",
    "lease",
    "parse_checkpoint",
    "parse_claim",
    "parse_complete",
    "parse_fail",
    "parse_heartbeat",
    "parse_paused",
    "parse_progress",
]
