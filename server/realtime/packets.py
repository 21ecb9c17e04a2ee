"""The Socket.IO packet class of the server: python-socketio's own, with a JSON parser that
turns an over-long integer literal into a value every field check refuses.

python-socketio's default parser raises on such a literal, so the whole packet is dropped
and a call in it never gets its ack. With this one, the call is answered: a
``validation_error`` naming the field (see :func:`server.validation.parse_json_int`).
"""

from __future__ import annotations

import json
from typing import Any

import socketio

from server.validation import parse_json_int


class PacketJson:
    """The ``json`` module face python-socketio asks of a packet class."""

    @staticmethod
    def dumps(obj: Any, **kwargs: Any) -> str:
        return json.dumps(obj, **kwargs)

    @staticmethod
    def loads(text: str | bytes, **kwargs: Any) -> Any:
        kwargs.setdefault("parse_int", parse_json_int)
        return json.loads(text, **kwargs)


class ServerPacket(socketio.packet.Packet):  # type: ignore[misc]
    """Scoped to the server (a class of its own), so clients in the same process keep the
    library's parser."""

    json = PacketJson


__all__ = ["PacketJson", "ServerPacket"]
