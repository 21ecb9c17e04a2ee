"""Value checks of the schema v2 fields, shared by the server (create payloads) and the
wire validator: each returns the checked value or raises :class:`ValueCheckError` naming
the field, so every caller refuses the same values with the same message."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

import attrs

from jobspine_shared.models import RetryPolicy

MIN_PRIORITY = -100
MAX_PRIORITY = 100
MAX_TAGS = 16
TAG_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
#: Idempotency keys and correlation ids: free text within these bounds.
MAX_KEY_LENGTH = 256

#: ``retry`` keys: inclusive ranges (contract v2, "Job snapshot, schema v2").
RETRY_RANGES: Mapping[str, tuple[float, float]] = {
    "max_attempts": (1, 20),
    "backoff_s": (0, 3600),
    "backoff_factor": (1, 10),
    "max_backoff_s": (0, 86400),
}


@attrs.frozen
class ValueCheckError(ValueError):
    """A value out of its field's range or of the wrong type."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def _is_number(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float)


def priority(value: object, field: str = "priority") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueCheckError(field, "must be an integer")
    if not MIN_PRIORITY <= value <= MAX_PRIORITY:
        raise ValueCheckError(field, f"must be from {MIN_PRIORITY} to {MAX_PRIORITY}")
    return value


def tags(value: object, field: str = "tags") -> tuple[str, ...]:
    if not isinstance(value, list | tuple):
        raise ValueCheckError(field, "must be a list of strings")
    if len(value) > MAX_TAGS:
        raise ValueCheckError(field, f"at most {MAX_TAGS} tags")
    for index, tag in enumerate(value):
        if not isinstance(tag, str) or not TAG_PATTERN.fullmatch(tag):
            raise ValueCheckError(f"{field}[{index}]", "must be 1 to 64 of [A-Za-z0-9_.:-]")
    return tuple(value)


def tag(value: object, field: str = "tag") -> str:
    if not isinstance(value, str) or not TAG_PATTERN.fullmatch(value):
        raise ValueCheckError(field, "must be 1 to 64 of [A-Za-z0-9_.:-]")
    return value


def timeout_s(value: object, field: str = "timeout_s") -> float | None:
    if value is None:
        return None
    if not _is_number(value):
        raise ValueCheckError(field, "must be a number or null")
    assert isinstance(value, int | float)
    if not math.isfinite(value) or value <= 0:
        raise ValueCheckError(field, "must be a finite number greater than 0")
    return float(value)


def retry_policy(value: object, field: str = "retry") -> RetryPolicy:
    """A partial object is completed with the defaults; unknown keys are refused."""
    if value is None:
        return RetryPolicy()
    if not isinstance(value, Mapping):
        raise ValueCheckError(field, "must be an object")
    unknown = sorted(set(value) - set(RETRY_RANGES))
    if unknown:
        raise ValueCheckError(f"{field}.{unknown[0]}", "is not a retry setting")
    checked: dict[str, float | int] = {}
    for key, (low, high) in RETRY_RANGES.items():
        if key not in value:
            continue
        item = value[key]
        if key == "max_attempts":
            if isinstance(item, bool) or not isinstance(item, int):
                raise ValueCheckError(f"{field}.{key}", "must be an integer")
        elif not _is_number(item) or not math.isfinite(item):
            raise ValueCheckError(f"{field}.{key}", "must be a finite number")
        if not low <= item <= high:
            raise ValueCheckError(f"{field}.{key}", f"must be from {low:g} to {high:g}")
        checked[key] = item if key == "max_attempts" else float(item)
    return RetryPolicy(**checked)  # type: ignore[arg-type]


def optional_key(value: object, field: str) -> str | None:
    """An idempotency key or correlation id: null, or 1..256 characters."""
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_KEY_LENGTH:
        raise ValueCheckError(field, f"must be a string of 1 to {MAX_KEY_LENGTH} characters")
    return value


__all__ = [
    "MAX_PRIORITY",
    "MAX_TAGS",
    "MIN_PRIORITY",
    "RETRY_RANGES",
    "TAG_PATTERN",
    "ValueCheckError",
    "optional_key",
    "priority",
    "retry_policy",
    "tag",
    "tags",
    "timeout_s",
]
