"""The one error boundary: what a client sees of any exception (issue 12).

The REST middleware, the socket dispatcher and the handshake all ask :func:`error_view`; a
domain error shows its code, message and details, anything else the generic
``internal_error`` (the caller logs the traceback; it is never sent).
"""

from __future__ import annotations

from typing import Any

import attrs

from server.errors import JobspineError, RateLimited
from server.limits.refusal import retry_after_header

INTERNAL_MESSAGE = "internal error; the server logged the details"


@attrs.frozen(kw_only=True)
class ErrorView:
    """An error as the contract's envelope shows it, with its HTTP status and headers."""

    code: str
    message: str
    details: dict[str, Any] | None = None
    http_status: int = 500
    headers: dict[str, str] = attrs.field(factory=dict)

    def to_wire(self) -> dict[str, Any]:
        """``{code, message, details?}``."""
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return body


def error_view(exc: BaseException) -> ErrorView:
    """How ``exc`` is shown to the client; whether to log it is the caller's decision
    (:func:`is_expected`)."""
    error = exc if isinstance(exc, JobspineError) else JobspineError(INTERNAL_MESSAGE)
    headers: dict[str, str] = {}
    if isinstance(error, RateLimited):
        headers["Retry-After"] = retry_after_header(error)
    wire = error.to_wire()
    return ErrorView(
        code=wire["code"],
        message=wire["message"],
        details=wire.get("details"),
        http_status=error.http_status,
        headers=headers,
    )


def is_expected(exc: BaseException) -> bool:
    """Whether ``exc`` is a domain error (shown as is) rather than a bug to log."""
    return isinstance(exc, JobspineError)


__all__ = ["INTERNAL_MESSAGE", "ErrorView", "error_view", "is_expected"]
