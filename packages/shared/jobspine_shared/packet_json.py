"""The JSON codec of jobspine's Socket.IO packets, for the server, the worker SDK and the
Python client: the ``json`` module face python-socketio asks of a packet class, orjson where
it gives the same answer as the standard library, which it is about 10x (encoding) and 2x
(decoding) faster than (docs/performance.md), and the standard library otherwise.

The server's packet class (:mod:`server.realtime.packets`) decodes what orjson refuses with
its own rules (over-long integers, too-deep payloads); clients decode it exactly as
python-socketio's default parser does.
"""

from __future__ import annotations

import json
import math
from typing import Any, ClassVar

import orjson

#: orjson encodes datetimes and dataclasses, which ``json.dumps`` refuses: with these it
#: refuses them too, and ``json.dumps`` raises its own error.
_ENCODE_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS

#: orjson decodes integer literals beyond 64 bits as floats of at least this size.
_LONG_INTEGER_FLOAT = 2.0**63


class PacketJson:
    """Packet JSON: the value the standard library would give, faster.

    - Encoding never escapes non-ASCII text (UTF-8 on the wire, a third of the bytes of
      ``\\uXXXX`` escapes for emoji). What orjson refuses (an integer beyond 64 bits, a lone
      surrogate, a key that is not text, a datetime, a dataclass) or writes otherwise (NaN
      and infinities, which it writes as ``null``) is encoded by ``json.dumps``, as before.
      Encoded by orjson although ``json.dumps`` refuses them: ``uuid.UUID`` values and enum
      members that are neither ``str`` nor ``int``; no packet jobspine builds holds one.
    - Decoding: orjson turns an integer literal beyond 64 bits into a float, and refuses
      what the standard library decodes (``NaN``, a lone surrogate escape, ``1e400``, nesting
      past 1024). Text orjson refuses, or whose decoded value holds an integral float beyond
      64 bits (where such a literal may have been), is decoded by :meth:`loads_exactly`, so
      every payload decodes as the standard library decodes it.
    """

    #: Whether a ``null`` in orjson's output sends a value holding NaN or an infinity to
    #: ``json.dumps`` (a walk of the whole value, for nearly every packet: most hold a null).
    #: The server's codec turns it off (:mod:`server.realtime.packets`).
    writes_non_finite: ClassVar[bool] = True

    @classmethod
    def dumps(cls, obj: Any, **kwargs: Any) -> str:
        try:
            encoded = orjson.dumps(obj, option=_ENCODE_OPTIONS)
        except TypeError:  # orjson.JSONEncodeError is one
            return json.dumps(obj, **kwargs)
        if cls.writes_non_finite and b"null" in encoded and _holds_a_non_finite_float(obj):
            return json.dumps(obj, **kwargs)
        return encoded.decode()

    @classmethod
    def loads(cls, text: str | bytes, **kwargs: Any) -> Any:
        if not kwargs:
            try:
                value = orjson.loads(text)
            except orjson.JSONDecodeError:
                pass
            else:
                if not _may_hold_a_long_integer(value):
                    return value
        return cls.loads_exactly(text, **kwargs)

    @staticmethod
    def loads_exactly(text: str | bytes, **kwargs: Any) -> Any:
        """What orjson cannot decode as the standard library would: the standard library."""
        return json.loads(text, **kwargs)


def _walk(value: object) -> list[object]:
    """Every value nested in ``value`` (dict values and list items), ``value`` first."""
    found = [value]
    for item in found:
        if isinstance(item, dict):
            found.extend(item.values())
        elif isinstance(item, list | tuple):
            found.extend(item)
    return found


def _holds_a_non_finite_float(value: object) -> bool:
    """Whether ``value`` holds NaN or an infinity (orjson writes them as ``null``)."""
    return any(isinstance(item, float) and not math.isfinite(item) for item in _walk(value))


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


__all__ = ["PacketJson"]
