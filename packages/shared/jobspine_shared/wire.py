"""Wire formats: cattrs converters between the attrs models and JSON-ready dicts.

``job_to_wire``/``job_from_wire`` are exact inverses for records we produced;
``validate_job_record`` is for external data and reports every problem with its field path;
``migrate_job_record`` upgrades records written under older schema versions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import cattrs
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError
from cattrs.v import transform_error

from jobspine_shared import checks
from jobspine_shared.events import EventType
from jobspine_shared.models import (
    JOB_TYPE_PATTERN,
    MAX_ERROR_MESSAGE_LENGTH,
    MAX_STEP_LENGTH,
    SCHEMA_VERSION,
    JobEvent,
    JobRecord,
)
from jobspine_shared.states import JobState


class RecordValidationError(ValueError):
    """External data is not a valid job record; ``errors`` lists each problem with its path."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


def format_time(value: datetime) -> str:
    """ISO 8601 in UTC with a ``Z`` suffix and microseconds kept."""
    if value.tzinfo is not UTC:  # every time jobspine makes is in UTC already
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        value = value.astimezone(UTC)
    return value.isoformat()[:-6] + "Z"  # "+00:00", the only offset of UTC


def parse_time(value: Any) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"expected an ISO 8601 string, got {type(value).__name__}")
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("timestamp without a time zone")
    return parsed.astimezone(UTC)


def _make_converter(*, strict: bool) -> cattrs.Converter:
    converter = cattrs.Converter(forbid_extra_keys=strict, detailed_validation=strict)
    converter.register_unstructure_hook(datetime, format_time)
    converter.register_structure_hook(datetime, lambda value, _: parse_time(value))
    for enum_type in (JobState, EventType):
        converter.register_unstructure_hook(enum_type, lambda member: member.value)
        converter.register_structure_hook(enum_type, lambda value, cls: cls(value))
    if strict:

        def strict_float(value: Any, _: type) -> float:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"expected a number, got {type(value).__name__}")
            if not math.isfinite(value):
                raise ValueError("expected a finite number")
            return float(value)

        def strict_int(value: Any, _: type) -> int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"expected an integer, got {type(value).__name__}")
            return value

        def strict_str(value: Any, _: type) -> str:
            if not isinstance(value, str):
                raise ValueError(f"expected a string, got {type(value).__name__}")
            return value

        def strict_bool(value: Any, _: type) -> bool:
            if not isinstance(value, bool):
                raise ValueError(f"expected a boolean, got {type(value).__name__}")
            return value

        def strict_dict(value: Any, _: type) -> dict[str, Any]:
            if not isinstance(value, dict):
                raise ValueError(f"expected an object, got {type(value).__name__}")
            return value

        converter.register_structure_hook(float, strict_float)
        converter.register_structure_hook(int, strict_int)
        converter.register_structure_hook(str, strict_str)
        converter.register_structure_hook(bool, strict_bool)
        converter.register_structure_hook_func(lambda t: t == dict[str, Any], strict_dict)
    return converter


#: Converter for data we wrote ourselves (fast, trusting).
converter = _make_converter(strict=False)
#: Converter for external data: strict types, no extra keys, every error reported.
strict_converter = _make_converter(strict=True)


def job_to_wire(job: JobRecord) -> dict[str, Any]:
    """The contract's JSON snapshot of a job."""
    data: dict[str, Any] = converter.unstructure(job)
    return data


def job_from_wire(data: Mapping[str, Any]) -> JobRecord:
    """Inverse of :func:`job_to_wire` for trusted data (our own server's output)."""
    return converter.structure(dict(data), JobRecord)


def event_to_wire(event: JobEvent) -> dict[str, Any]:
    data: dict[str, Any] = converter.unstructure(event)
    return data


def event_from_wire(data: Mapping[str, Any]) -> JobEvent:
    return converter.structure(dict(data), JobEvent)


def _semantic_errors(job: JobRecord) -> list[str]:
    errors = []
    if not JOB_TYPE_PATTERN.fullmatch(job.type):
        errors.append("type: must be 1 to 64 characters of [a-z0-9_.-]")
    if not 0 <= job.progress <= 100:
        errors.append("progress: must be within [0, 100]")
    if job.step is not None and len(job.step) > MAX_STEP_LENGTH:
        errors.append(f"step: at most {MAX_STEP_LENGTH} characters")
    if job.error is not None and len(job.error.message) > MAX_ERROR_MESSAGE_LENGTH:
        errors.append(f"error.message: at most {MAX_ERROR_MESSAGE_LENGTH} characters")
    if job.has_checkpoint != (job.checkpoint_at is not None):
        errors.append("has_checkpoint: must be true exactly when checkpoint_at is set")
    for name in ("seq", "attempt", "recovery_attempts", "retries"):
        if getattr(job, name) < 0:
            errors.append(f"{name}: must not be negative")
    errors.extend(_v2_errors(job))
    return errors


def _v2_errors(job: JobRecord) -> list[str]:
    """The schema v2 fields, checked by the same rules as a create payload."""
    errors = []
    retry = {
        "max_attempts": job.retry.max_attempts,
        "backoff_s": job.retry.backoff_s,
        "backoff_factor": job.retry.backoff_factor,
        "max_backoff_s": job.retry.max_backoff_s,
    }
    checked: list[tuple[Callable[..., Any], object]] = [
        (checks.priority, job.priority),
        (checks.tags, list(job.tags)),
        (checks.timeout_s, job.timeout_s),
        (checks.retry_policy, retry),
    ]
    for check, value in checked:
        try:
            check(value)
        except checks.ValueCheckError as exc:
            errors.append(str(exc))
    return errors


def validate_job_record(data: Any) -> JobRecord:
    """Check external data against the current schema (after migration) and build the record.

    Raises :class:`RecordValidationError` naming every offending field.
    """
    if not isinstance(data, Mapping):
        raise RecordValidationError([f"$: expected an object, got {type(data).__name__}"])
    data = migrate_job_record(data)
    try:
        job = strict_converter.structure(dict(data), JobRecord)
    except (ClassValidationError, ForbiddenExtraKeysError) as exc:
        raise RecordValidationError(sorted(transform_error(exc, path="$"))) from None
    errors = _semantic_errors(job)
    if errors:
        raise RecordValidationError(errors)
    return job


def _migrate_v0(data: dict[str, Any]) -> dict[str, Any]:
    """v0 records said ``status`` for ``state``, kept progress as a fraction in [0, 1],
    and had no event stream (``seq``/``epoch``) nor recovery bookkeeping."""
    data = dict(data)
    data.pop("version", None)
    if "status" in data:
        data["state"] = data.pop("status")
    fraction = data.get("progress")
    if isinstance(fraction, int | float) and not isinstance(fraction, bool):
        data["progress"] = float(fraction) * 100.0
    data.setdefault("seq", 0)
    data.setdefault("epoch", f"v0-{data.get('id', '')}")
    data.setdefault("recovery_attempts", 0)
    data.setdefault("pause_requested", False)
    data.setdefault("has_checkpoint", data.get("checkpoint_at") is not None)
    data["schema_version"] = 1
    return data


def _migrate_v1(data: dict[str, Any]) -> dict[str, Any]:
    """v1 records lack the v2 fields; each takes the contract's default."""
    data = dict(data)
    data.setdefault("priority", 0)
    data.setdefault("run_at", None)
    data.setdefault("tags", [])
    data.setdefault("parent_id", None)
    data.setdefault("timeout_s", None)
    data.setdefault(
        "retry",
        {"max_attempts": 1, "backoff_s": 5.0, "backoff_factor": 2.0, "max_backoff_s": 300.0},
    )
    data.setdefault("retries", 0)
    data.setdefault("idempotency_key", None)
    data.setdefault("correlation_id", None)
    data["schema_version"] = 2
    return data


#: ``version -> upgrade to version + 1``.
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {
    0: _migrate_v0,
    1: _migrate_v1,
}


def migrate_job_record(data: Mapping[str, Any]) -> dict[str, Any]:
    """Upgrade a record to the current schema version, one step at a time.

    A record without ``schema_version`` is v0. A version newer than ours is refused.
    """
    record = dict(data)
    version = record.get("schema_version", record.get("version", 0))
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise RecordValidationError([f"schema_version: unknown version {version!r}"])
    if version > SCHEMA_VERSION:
        raise RecordValidationError(
            [f"schema_version: {version} is newer than this software ({SCHEMA_VERSION})"]
        )
    while version < SCHEMA_VERSION:
        record = MIGRATIONS[version](record)
        version += 1
    return record
