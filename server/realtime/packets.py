"""The Socket.IO packet class of the server: python-socketio's own, with a JSON parser that
turns an over-long integer literal into a value every field check refuses.

python-socketio's default parser raises on such a literal, so the whole packet is dropped
and a call in it never gets its ack. With this one, the call is answered: a
``validation_error`` naming the field (see :func:`server.validation.parse_json_int`). The same
holds for a payload nested deeper than the parser's recursion limit (:class:`TooDeepPayload`).
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
        try:
            return json.loads(text, **kwargs)
        except RecursionError:
            return _too_deep_event(text)


class TooDeepPayload:
    """The payload of an event whose JSON nests deeper than the parser can follow."""


def _too_deep_event(text: str | bytes) -> list[object]:
    """``[event, TooDeepPayload()]`` for the text of an event packet (``["name", …]``), so the
    call is answered with a ``validation_error`` instead of being dropped unanswered."""
    decoded = text.decode() if isinstance(text, bytes) else text
    start = decoded.find("[")
    if start < 0:
        raise ValueError("an undecodable packet")
    event, _ = json.JSONDecoder().raw_decode(decoded[start + 1 :].lstrip())
    if not isinstance(event, str):
        raise ValueError("an undecodable packet")
    return [event, TooDeepPayload()]


class ServerPacket(socketio.packet.Packet):  # type: ignore[misc]
    """Scoped to the server (a class of its own), so clients in the same process keep the
    library's parser."""

    json = PacketJson


__all__ = ["PacketJson", "ServerPacket", "TooDeepPayload"]
