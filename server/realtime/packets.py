"""The Socket.IO packet class of the server: python-socketio's own, with a JSON parser that
turns an over-long integer literal into a value every field check refuses.

python-socketio's default parser raises on such a literal, so the whole packet is dropped
and a call in it never gets its ack. With this one, the call is answered: a
``validation_error`` naming the field (see :func:`server.validation.parse_json_int`). The same
holds for a payload nested deeper than the parser's recursion limit (:class:`TooDeepPayload`).

:class:`GuardedAsyncServer` refuses binary packets (``BINARY_EVENT``, ``BINARY_ACK`` and stray
binary frames) before anything is buffered: python-socketio would otherwise keep every
attachment frame until the count the header announced arrives, before any check of the
caller. The connection is closed instead; no jobspine event carries binary data.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import socketio

from jobspine_shared import packet_json
from server.validation import parse_json_int

log = logging.getLogger(__name__)


class PacketJson(packet_json.PacketJson):
    """The shared packet codec (:class:`jobspine_shared.packet_json.PacketJson`; it lived
    here before the worker SDK and the Python client used it too), decoding what orjson
    cannot with the server's rules: an over-long integer literal becomes a value every field
    check refuses, a payload nested too deep a :class:`TooDeepPayload`.

    Encoding is orjson's, a ``null`` taken as a null: every number the server sends was
    checked finite (progress, and every JSON value a caller stores), so no walk of each
    packet looks for NaN; should one slip through it goes out as ``null``, strict JSON that
    a browser's ``JSON.parse`` reads, not ``json.dumps``'s ``NaN``."""

    writes_non_finite = False

    @staticmethod
    def loads_exactly(text: str | bytes, **kwargs: Any) -> Any:
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


#: Socket.IO packet types (the first character of a text frame) that announce attachments.
_BINARY_PACKET_TYPES = frozenset("56")


def is_binary_packet(data: object) -> bool:
    """Whether an Engine.IO message is a binary Socket.IO packet or one of its attachments."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return True
    return isinstance(data, str) and data[:1] in _BINARY_PACKET_TYPES


class GuardedAsyncServer(socketio.AsyncServer):  # type: ignore[misc]
    """python-socketio's server, closing a connection that sends a binary packet."""

    async def _handle_eio_message(self, eio_sid: str, data: object) -> None:
        if is_binary_packet(data):
            log.info("closed connection %s: it sent a binary packet", eio_sid)
            await self._abort(eio_sid)
            return
        await super()._handle_eio_message(eio_sid, data)

    async def _abort(self, eio_sid: str) -> None:
        """Close the transport from the server's side without waiting for the client (a
        hostile one would not answer Engine.IO's CLOSE): ending the send queue makes
        Engine.IO close the websocket or answer the long poll."""
        socket = self.eio.sockets.get(eio_sid)
        if socket is None:
            return
        await socket.close(wait=False, abort=True, reason=self.eio.reason.SERVER_DISCONNECT)
        socket.queue.put_nowait(None)


class ServerPacket(socketio.packet.Packet):  # type: ignore[misc]
    """Scoped to the server (a class of its own), so clients in the same process keep the
    library's parser."""

    json = PacketJson

    @classmethod
    def data_is_binary(cls, data: Any) -> bool:
        """python-socketio's own test (bytes anywhere in lists and dict values; other
        containers are not looked into), asked for every packet built, its event and ack
        packets included: one walk over a list instead of a call, a list and a
        ``functools.reduce`` per nested value."""
        found = [data]
        for item in found:
            if isinstance(item, bytes | bytearray):
                return True
            if isinstance(item, dict):
                found.extend(item.values())
            elif isinstance(item, list):
                found.extend(item)
        return False


__all__ = [
    "GuardedAsyncServer",
    "PacketJson",
    "ServerPacket",
    "TooDeepPayload",
    "is_binary_packet",
]
