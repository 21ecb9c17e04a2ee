""":class:`JobspineError`: every refusal the client reports, with the contract's code."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jobspine_shared.errors import connect_error_body


class JobspineError(Exception):
    """A refused call or connection: ``code`` (the contract's error code, or ``unavailable``
    when the server could not be reached, ``protocol_error`` for an answer off the
    contract), ``message`` and ``details``."""

    def __init__(self, code: str, message: str, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.details: dict[str, Any] = dict(details or {})

    @classmethod
    def from_error(cls, error: Any) -> JobspineError:
        """From the contract's ``{code, message, details?}`` (anything else: protocol_error)."""
        if not isinstance(error, Mapping) or not isinstance(error.get("code"), str):
            return cls("protocol_error", f"not an error object: {error!r:.200}")
        message = error.get("message")
        details = error.get("details")
        return cls(
            error["code"],
            message if isinstance(message, str) else error["code"],
            details if isinstance(details, Mapping) else None,
        )


def ack_result(event: str, ack: Any) -> dict[str, Any]:
    """The ``{ok: true, …}`` ack of ``event``; a refusal raises :class:`JobspineError`."""
    if not isinstance(ack, dict) or not isinstance(ack.get("ok"), bool):
        raise JobspineError("protocol_error", f"malformed ack to {event}: {ack!r:.200}")
    if not ack["ok"]:
        raise JobspineError.from_error(ack.get("error"))
    return ack


def connect_refusal(data: Any) -> JobspineError | None:
    """The error of a ``connect_error`` payload carrying ``{code, message}``, else None (a
    network failure)."""
    body = connect_error_body(data)
    return None if body is None else JobspineError.from_error(body)


__all__ = ["JobspineError", "ack_result", "connect_refusal"]
