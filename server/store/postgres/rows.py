"""Rows and values: the one mapping between ``jobs`` / ``job_events`` rows and the store's
records, and the columns a statement may name."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, Final

import asyncpg
import attrs

from jobspine_shared.events import EventType
from jobspine_shared.models import JobError, JobEvent, JobRecord, RetryPolicy
from jobspine_shared.states import JobState
from server.store.model import CheckpointInfo, StoredJob, job_event

# A job's id has one form, canonical (lower case, hyphenated: what ``str`` of a ``uuid.UUID``
# gives); asyncpg encodes such a string as a ``uuid`` parameter, so a statement takes it as is.
from server.validation import is_job_id as is_job_id

RECORD_FIELDS: Final = tuple(field.name for field in attrs.fields(JobRecord))
BOOKKEEPING: Final = (
    "lease",
    "worker_id",
    "checkpoint_size",
    "checkpoint_progress",
    "checkpoint_keys",
)
JOB_COLUMNS: Final = ", ".join(RECORD_FIELDS + BOOKKEEPING)
#: Columns a change may name: record fields, except the identity.
SETTABLE: Final = frozenset(RECORD_FIELDS) - {"id"}


def job_from_row(row: asyncpg.Record) -> StoredJob:
    """The one mapping from a ``jobs`` row to what every store returns."""
    values = {name: row[name] for name in RECORD_FIELDS}
    values["id"] = str(row["id"])
    values["state"] = JobState(row["state"])
    values["error"] = _error_from_json(row["error"])
    values["tags"] = tuple(row["tags"])
    values["retry"] = RetryPolicy(**row["retry"])
    values["parent_id"] = None if row["parent_id"] is None else str(row["parent_id"])
    checkpoint = None
    if row["has_checkpoint"]:
        checkpoint = CheckpointInfo(
            saved_at=row["checkpoint_at"],
            size_bytes=row["checkpoint_size"],
            progress=row["checkpoint_progress"],
            keys=tuple(row["checkpoint_keys"]),
        )
    return StoredJob(
        record=JobRecord(**values),
        lease=row["lease"],
        worker_id=row["worker_id"],
        checkpoint=checkpoint,
    )


def _error_from_json(value: Mapping[str, Any] | None) -> JobError | None:
    if value is None:
        return None
    return JobError(
        code=value["code"], message=value["message"], retryable=bool(value.get("retryable"))
    )


def _error_to_json(value: JobError | Mapping[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    if isinstance(value, JobError):
        return attrs.asdict(value)
    return dict(value)


def column_value(name: str, value: Any) -> Any:
    """A record field's value as its column takes it."""
    if name == "state":
        return JobState(value).value
    if name == "error":
        return _error_to_json(value)
    if name == "retry":
        return attrs.asdict(value)
    if name == "tags":
        return list(value)
    if name == "parent_id" and value is not None:
        return uuid.UUID(value)
    return value


def job_key(job_id: str) -> uuid.UUID | None:
    """The uuid of a canonical job id; None for anything else, which no job has (as in the
    memory store, whose keys are these strings)."""
    return uuid.UUID(job_id) if is_job_id(job_id) else None


def events_from_arrays(job: JobRecord, row: asyncpg.Record) -> tuple[JobEvent, ...]:
    """The events of a :data:`~server.store.postgres.queries.READ_STREAM` row (its parallel
    arrays; NULL for none)."""
    if row["seqs"] is None:
        return ()
    return tuple(
        job_event(job, seq=seq, type=EventType(type_), at=at, data=data)
        for seq, type_, at, data in zip(
            row["seqs"], row["types"], row["ats"], row["datas"], strict=True
        )
    )


__all__ = [
    "BOOKKEEPING",
    "JOB_COLUMNS",
    "RECORD_FIELDS",
    "SETTABLE",
    "column_value",
    "events_from_arrays",
    "job_from_row",
    "job_key",
]
