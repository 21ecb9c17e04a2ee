"""Domain errors: one root, narrow subclasses whose docstring is the default message.

Each carries the wire error code and HTTP status of the contract's error envelope, so the
transports shape replies without knowing individual errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from jobspine_shared.errors import ErrorCode


class JobspineError(Exception):
    """Something went wrong."""

    code: ClassVar[ErrorCode] = ErrorCode.INTERNAL
    http_status: ClassVar[int] = 500

    def __init__(self, message: str | None = None, *, details: Mapping[str, Any] | None = None):
        self.message = message or (type(self).__doc__ or "").strip().splitlines()[0]
        self.details: dict[str, Any] | None = dict(details) if details else None
        super().__init__(self.message)

    def to_wire(self) -> dict[str, Any]:
        """The contract's error object ``{code, message, details?}``."""
        body: dict[str, Any] = {"code": str(self.code), "message": self.message}
        if self.details:
            body["details"] = self.details
        return body


class BadRequest(JobspineError):
    """The request could not be read."""

    code = ErrorCode.BAD_REQUEST
    http_status = 400


class Unauthorized(JobspineError):
    """A valid token is required."""

    code = ErrorCode.UNAUTHORIZED
    http_status = 401


class Forbidden(JobspineError):
    """This token may not do that."""

    code = ErrorCode.FORBIDDEN
    http_status = 403


class NotFound(JobspineError):
    """No such job."""

    code = ErrorCode.NOT_FOUND
    http_status = 404


class MethodNotAllowed(JobspineError):
    """That method is not allowed on this path."""

    code = ErrorCode.METHOD_NOT_ALLOWED
    http_status = 405


class InvalidTransition(JobspineError):
    """The job's current state does not allow this."""

    code = ErrorCode.INVALID_TRANSITION
    http_status = 409


class NotStale(InvalidTransition):
    """The job is no longer stale under that lease."""


class Conflict(JobspineError):
    """That idempotency key was used for a different job."""

    code = ErrorCode.CONFLICT
    http_status = 409


class LeaseLost(JobspineError):
    """The job is no longer running under this lease: stop working on it."""

    code = ErrorCode.LEASE_LOST
    http_status = 409


class InvalidProgress(JobspineError):
    """Progress may not go down within an attempt."""

    code = ErrorCode.INVALID_PROGRESS
    http_status = 409


class PayloadTooLarge(JobspineError):
    """The payload is larger than allowed."""

    code = ErrorCode.PAYLOAD_TOO_LARGE
    http_status = 413


class ValidationFailed(JobspineError):
    """The request is invalid."""

    code = ErrorCode.VALIDATION_ERROR
    http_status = 422


class RateLimited(JobspineError):
    """Too many requests; slow down."""

    code = ErrorCode.RATE_LIMITED
    http_status = 429


class Unavailable(JobspineError):
    """The job store is unavailable; try again shortly."""

    code = ErrorCode.UNAVAILABLE
    http_status = 503


class ConfigError(Exception):
    """A configuration variable has a bad value; the message names it."""
