"""The create command: a create payload parsed once, here, into a frozen :class:`CreateJob`
that REST and Socket.IO hand to the service alike."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import attrs

from jobspine_shared import checks
from jobspine_shared.models import JobSpec
from jobspine_shared.wire import parse_time
from server import validation
from server.errors import ValidationFailed

#: Every key a create payload may carry (contract v2: all snapshot fields but ``retries``).
CREATE_KEYS = frozenset(
    {
        "type",
        "input",
        "priority",
        "run_at",
        "tags",
        "parent_id",
        "timeout_s",
        "retry",
        "idempotency_key",
        "correlation_id",
    }
)


@attrs.frozen(kw_only=True)
class CreateJob(JobSpec):
    """A checked create request: every value within the contract's ranges."""


def _checked(field: str, check: Any, value: object) -> Any:
    try:
        return check(value, field)
    except checks.ValueCheckError as exc:
        raise ValidationFailed(str(exc), details={"field": exc.field}) from None


def _run_at(value: object) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_time(value)
    except ValueError:
        raise validation.invalid(
            "run_at", "must be an ISO 8601 time with a time zone, or null"
        ) from None


def _text(value: object, field: str) -> str | None:
    checked: str | None = _checked(field, checks.optional_key, value)
    return None if checked is None else validation.storable_text(checked, field)


def parse_create(payload: object) -> CreateJob:
    """The create payload (``POST /api/jobs`` body, ``job:create`` data) as a command.

    Keys outside :data:`CREATE_KEYS` are ignored (additive contract: a newer client's
    fields do not break an older server)."""
    if not isinstance(payload, Mapping):
        raise validation.invalid("$", "must be an object")
    raw_input = payload.get("input")
    job_input = validation.json_object({} if raw_input is None else raw_input, "input")
    validation.encoded_size(job_input, "input")
    parent = payload.get("parent_id")
    tags: tuple[str, ...] = _checked("tags", checks.tags, payload.get("tags", []))
    return CreateJob(
        type=validation.job_type(payload.get("type")),
        input=job_input,
        priority=_checked("priority", checks.priority, payload.get("priority", 0)),
        run_at=_run_at(payload.get("run_at")),
        tags=tags,
        parent_id=None if parent is None else validation.job_id(parent, "parent_id"),
        timeout_s=_checked("timeout_s", checks.timeout_s, payload.get("timeout_s")),
        retry=_checked("retry", checks.retry_policy, payload.get("retry")),
        idempotency_key=_text(payload.get("idempotency_key"), "idempotency_key"),
        correlation_id=_text(payload.get("correlation_id"), "correlation_id"),
    )


__all__ = ["CREATE_KEYS", "CreateJob", "parse_create"]
