"""Page cursors of ``GET /api/jobs``: an opaque string over :class:`PageCursor`, decoded by
the list command's parser (:mod:`server.commands.user`) and encoded by the page's view
(:mod:`server.rendering`)."""

from __future__ import annotations

import base64
import binascii

from jobspine_shared.wire import format_time, parse_time
from server import validation
from server.errors import ValidationFailed
from server.store.model import PageCursor


def encode_cursor(cursor: PageCursor) -> str:
    raw = f"{format_time(cursor.created_at)}|{cursor.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(value: str) -> PageCursor:
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
        created, job_id = raw.split("|")
        return PageCursor(created_at=parse_time(created), id=validation.job_id(job_id))
    except (ValueError, binascii.Error, UnicodeDecodeError, ValidationFailed):
        raise validation.invalid("cursor", "is not a cursor this server issued") from None


__all__ = ["decode_cursor", "encode_cursor"]
