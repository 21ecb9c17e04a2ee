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

import orjson
import socketio

from server.validation import parse_json_int

log = logging.getLogger(__name__)


class PacketJson:
    """The ``json`` module face python-socketio asks of a packet class: orjson where it gives
    the same answer as the standard library, which it is about 10x (encoding) and 2x
    (decoding) faster than (docs/performance.md), and the standard library otherwise.

    - Encoding never escapes non-ASCII text (UTF-8 on the wire, a third of the bytes of
      ``\\uXXXX`` escapes for emoji). What orjson refuses (an integer beyond 64 bits, a lone
      surrogate, a key that is not text) is encoded as before, by ``json.dumps``.
    - Decoding: orjson turns an integer literal beyond 64 bits into a float, and refuses
      what the standard library decodes (``NaN``, a lone surrogate escape, ``1e400``, nesting
      past 1024). Text orjson refuses, or whose decoded value holds an integral float beyond
      64 bits (where such a literal may have been), is decoded by ``json.loads`` with the
      over-long integer check, so every payload decodes exactly as before.
    """

    @staticmethod
    def dumps(obj: Any, **kwargs: Any) -> str:
        try:
            return orjson.dumps(obj).decode()
        except TypeError:  # orjson.JSONEncodeError is one
            return json.dumps(obj, **kwargs)

    @staticmethod
    def loads(text: str | bytes, **kwargs: Any) -> Any:
        if not kwargs:
            try:
                value = orjson.loads(text)
            except orjson.JSONDecodeError:
                pass
            else:
                if not _may_hold_a_long_integer(value):
                    return value
        kwargs.setdefault("parse_int", parse_json_int)
        try:
            return json.loads(text, **kwargs)
        except RecursionError:
            return _too_deep_event(text)


#: orjson decodes integer literals beyond 64 bits as floats of at least this size.
_LONG_INTEGER_FLOAT = 2.0**63


def _may_hold_a_long_integer(value: object) -> bool:
    """Whether a value orjson decoded holds an integral float of 64 bits or more."""
    stack = [value]
    pop, extend = stack.pop, stack.extend
    while stack:
        item = pop()
        if isinstance(item, dict):
            extend(item.values())
        elif isinstance(item, list):
            extend(item)
        elif isinstance(item, float) and abs(item) >= _LONG_INTEGER_FLOAT and item.is_integer():
            return True
    return False


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


__all__ = [
    "GuardedAsyncServer",
    "PacketJson",
    "ServerPacket",
    "TooDeepPayload",
    "is_binary_packet",
]
