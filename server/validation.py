"""Domain checks on values that reach the service layer, shared by every transport."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from jobspine_shared import values
from jobspine_shared.checks import ValueCheckError
from jobspine_shared.models import (
    JOB_TYPE_PATTERN,
    MAX_ERROR_CODE_LENGTH,
    MAX_ERROR_MESSAGE_LENGTH,
    MAX_STEP_LENGTH,
)
from jobspine_shared.values import _UNSTORABLE
from jobspine_shared.values import MAX_FLOAT_MAGNITUDE as MAX_FLOAT_MAGNITUDE
from jobspine_shared.values import MAX_INTEGER_DIGITS as MAX_INTEGER_DIGITS
from jobspine_shared.values import MAX_JSON_DEPTH as MAX_JSON_DEPTH
from jobspine_shared.values import OverlongInteger as OverlongInteger
from jobspine_shared.values import is_storable_text as is_storable_text
from jobspine_shared.values import parse_json_int as parse_json_int
from server.errors import PayloadTooLarge, ValidationFailed

#: A call's payload: a Socket.IO event's data, or a REST request's path, query and body
#: gathered into one mapping (:mod:`server.commands` parses it).
Payload = Mapping[str, object]


def invalid(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"{field}: {message}", details={"field": field})


#: The canonical text of a UUID (what ``str(uuid.UUID(...))`` gives): lowercase hex in
#: 8-4-4-4-12 groups. A regex, not a ``uuid.UUID`` round trip: every worker call checks an
#: id, and this is several times faster (measured in docs/performance.md).
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def is_job_id(value: object) -> bool:
    """Job ids are canonical lowercase UUID strings."""
    return isinstance(value, str) and _CANONICAL_UUID.fullmatch(value) is not None


def job_id(value: object, field: str = "job_id") -> str:
    if not isinstance(value, str):
        raise invalid(field, "must be a string")
    if not is_job_id(value):
        raise invalid(field, "is not a job id")
    return value


def job_type(value: object, field: str = "type") -> str:
    if not isinstance(value, str) or not JOB_TYPE_PATTERN.fullmatch(value):
        raise invalid(field, "must be 1 to 64 characters of [a-z0-9_.-]")
    return value


def progress(value: object, field: str = "progress") -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid(field, "must be a number")
    if not math.isfinite(value) or not 0 <= value <= 100:
        raise invalid(field, "must be a finite number in [0, 100]")
    return float(value)


def storable_text(value: str, field: str) -> str:
    if not is_storable_text(value):
        raise invalid(field, _UNSTORABLE)
    return value


def optional_text(value: object, field: str, max_length: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid(field, "must be a string")
    if len(value) > max_length:
        raise invalid(field, f"must be at most {max_length} characters")
    return storable_text(value, field)


def step(value: object) -> str | None:
    return optional_text(value, "step", MAX_STEP_LENGTH)


def error_message(value: object) -> str:
    text = optional_text(value, "error.message", MAX_ERROR_MESSAGE_LENGTH)
    if text is None:
        raise invalid("error.message", "is required")
    return text


def error_code(value: object) -> str | None:
    return optional_text(value, "error.code", MAX_ERROR_CODE_LENGTH)


def json_object(value: object, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid(field, "must be a JSON object")
    return value


def bounded_size(value: object, field: str, max_bytes: int) -> int:
    """:func:`encoded_size`, refused as ``payload_too_large`` above ``max_bytes``
    (``MAX_INPUT_BYTES`` for a job's input and result)."""
    return refuse_oversize(encoded_size(value, field), field, max_bytes)


def refuse_oversize(size: int, field: str, max_bytes: int) -> int:
    """A value's encoded ``size`` (from :func:`encoded_size`), refused as
    ``payload_too_large`` above ``max_bytes``."""
    if size > max_bytes:
        raise PayloadTooLarge(
            f"{field} is {size} bytes of compact JSON; at most {max_bytes} are allowed",
            details={"field": field, "size": size, "limit": max_bytes},
        )
    return size


def encoded_size(value: object, field: str) -> int:
    """:func:`jobspine_shared.values.encoded_size`, refusing with ``validation_error``."""
    try:
        return values.encoded_size(value, field)
    except ValueCheckError as exc:
        raise invalid(exc.field, exc.message) from None


def after_seq(value: object, field: str = "after_seq") -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise invalid(field, "must be a non-negative integer")
    return value
