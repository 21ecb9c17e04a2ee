"""Error codes of the wire contract's error envelope ``{code, message, details?}``."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any


class ErrorCode(enum.StrEnum):
    BAD_REQUEST = "bad_request"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    INVALID_TRANSITION = "invalid_transition"
    CONFLICT = "conflict"
    LEASE_LOST = "lease_lost"
    INVALID_PROGRESS = "invalid_progress"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    VALIDATION_ERROR = "validation_error"
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal_error"


#: Codes that tell a worker to stop working on the job it called about.
STOP_JOB_CODES: frozenset[str] = frozenset(
    {ErrorCode.LEASE_LOST, ErrorCode.NOT_FOUND, ErrorCode.VALIDATION_ERROR}
)


def connect_error_body(data: Any) -> Mapping[str, Any] | None:
    """The contract's ``{code, message}`` in a ``connect_error`` payload, found directly or
    under python-socketio's ``data`` key; None when there is none (a network failure)."""
    if not isinstance(data, Mapping):
        return None
    for candidate in (data.get("data"), data):
        if isinstance(candidate, Mapping) and isinstance(candidate.get("code"), str):
            return candidate
    return None
