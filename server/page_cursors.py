"""Page cursors: opaque strings over a store position, decoded by the commands' parsers
(:mod:`server.commands.user`) and encoded by the pages' views (:mod:`server.rendering`).
``GET /api/jobs`` pages by :class:`PageCursor` (``created_at``, ``id``); an audit trail by
the entry's position. A cursor of one kind is refused where the other is expected."""

from __future__ import annotations

import base64
import binascii

from jobspine_shared.wire import format_time, parse_time
from server import validation
from server.errors import ValidationFailed
from server.store.model import PageCursor

_AUDIT = "audit"


def _opaque(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _parts(value: str) -> list[str]:
    """The ``|``-separated parts of a cursor this server issued; ValueError otherwise."""
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode().split("|")
    except (binascii.Error, UnicodeDecodeError):
        raise ValueError("not a cursor") from None


def _refused() -> ValidationFailed:
    return validation.invalid("cursor", "is not a cursor this server issued")


def encode_cursor(cursor: PageCursor) -> str:
    return _opaque(f"{format_time(cursor.created_at)}|{cursor.id}")


def decode_cursor(value: str) -> PageCursor:
    try:
        created, job_id = _parts(value)
        return PageCursor(created_at=parse_time(created), id=validation.job_id(job_id))
    except (ValueError, ValidationFailed):
        raise _refused() from None


def encode_audit_cursor(after: int) -> str:
    return _opaque(f"{_AUDIT}|{after}")


def decode_audit_cursor(value: str) -> int:
    try:
        kind, after = _parts(value)
        position = int(after)
    except ValueError:
        raise _refused() from None
    if kind != _AUDIT or position < 0 or after != str(position):
        raise _refused()
    return position


__all__ = ["decode_audit_cursor", "decode_cursor", "encode_audit_cursor", "encode_cursor"]
