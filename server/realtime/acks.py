"""The flat ack shapes of the Socket.IO calls.

``{"ok": true, …fields}`` on success, ``{"ok": false, "error": {code, message, details?}}``
otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from server.errors import JobspineError

Ack = dict[str, Any]


def ok(fields: Mapping[str, Any]) -> Ack:
    return {"ok": True, **fields}


def error(exc: JobspineError) -> Ack:
    return {"ok": False, "error": exc.to_wire()}


__all__ = ["Ack", "error", "ok"]
