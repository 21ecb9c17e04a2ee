"""JSON value checks shared by the server and the worker SDK: what no store or client can
hold (NaN, NUL, unpaired surrogates, over-long integers, huge floats, deep nesting), so the
SDK refuses locally exactly what the server would refuse with ``validation_error``.

``encoded_size`` raises :class:`jobspine_shared.checks.ValueCheckError` naming the field.
"""

from __future__ import annotations

import json
import re
from typing import Any

import attrs

from jobspine_shared.checks import ValueCheckError


def invalid(field: str, message: str) -> ValueCheckError:
    return ValueCheckError(field, message)


#: The longest integer literal a payload may carry: what python-socketio clients (the worker
#: SDK) decode; a longer one would make every message that echoes it undecodable for them.
MAX_INTEGER_DIGITS = 100


@attrs.frozen
class OverlongInteger:
    """What a JSON parser makes of an integer literal longer than ``MAX_INTEGER_DIGITS``: not
    a number and not JSON-encodable, so every field check refuses it as a validation error
    (rather than the whole message being unreadable, or stored and echoed to clients that
    cannot read it)."""

    digits: int


def parse_json_int(text: str) -> int | OverlongInteger:
    """``parse_int`` for ``json.loads``: refuses over-long integers field by field."""
    if len(text) > MAX_INTEGER_DIGITS:
        return OverlongInteger(len(text))
    return int(text)


#: Characters no store can hold: NUL (Postgres ``text`` and ``jsonb`` refuse it) and unpaired
#: surrogates (JSON can carry them as ``\ud800`` escapes, UTF-8 cannot encode them).
_UNSTORABLE_CHARACTER = re.compile("[\x00\ud800-\udfff]")
#: A NUL escape in compact JSON text: ``\u0000`` after an even number of backslashes.
_NUL_ESCAPE = re.compile(r"(?:^|[^\\])(?:\\\\)*\\u0000")
_UNSTORABLE = "must not contain NUL or unpaired surrogate characters"


def is_storable_text(value: str) -> bool:
    return _UNSTORABLE_CHARACTER.search(value) is None


#: How deep a JSON value (``input``, ``result``, checkpoint ``data``) may nest. Deeper values
#: would reach Python's recursion limit when copied, encoded or decoded (by the server or
#: by Python clients), so they are refused up front.
MAX_JSON_DEPTH = 100


_CONTAINERS = (dict, list)


def _nesting_exceeds(value: object, limit: int) -> bool:
    """Whether ``value`` nests more than ``limit`` containers deep: level by level, without
    recursion (the values come from JSON, so containers are exactly dicts and lists)."""
    level: list[Any] = [value] if type(value) in _CONTAINERS else []
    for _ in range(limit):
        below: list[Any] = []
        for item in level:
            children = item.values() if type(item) is dict else item
            below += [child for child in children if type(child) in _CONTAINERS]
        if not below:
            return False
        level = below
    return True


#: Floats from this magnitude on are refused: Postgres ``jsonb`` writes numbers out in full,
#: so ``1e99`` comes back as an integer literal longer than ``MAX_INTEGER_DIGITS`` (with a
#: sign), which Python clients cannot decode.
MAX_FLOAT_MAGNITUDE = 1e99
#: How ``json.dumps`` writes a float of at least that magnitude (it may also match text).
_HUGE_FLOAT_TEXT = re.compile(r"[0-9]e\+(?:99|[1-9][0-9]{2})")


def _holds_huge_float(value: object) -> bool:
    pending: list[object] = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, float) and abs(item) >= MAX_FLOAT_MAGNITUDE:
            return True
        if isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def _unencodable(value: object) -> Any:
    if isinstance(value, OverlongInteger):
        raise TypeError(f"an integer of more than {MAX_INTEGER_DIGITS} digits")
    raise TypeError(f"a value of type {type(value).__name__}")


def encoded_size(value: object, field: str) -> int:
    """Length of the compact UTF-8 JSON encoding; refuses what JSON cannot carry (NaN), text
    no store can hold (NUL, unpaired surrogates) anywhere in keys or strings, and values that
    nest deeper than ``MAX_JSON_DEPTH``."""
    too_deep = invalid(field, f"must not nest deeper than {MAX_JSON_DEPTH} levels")
    try:
        text = json.dumps(
            value, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_unencodable
        )
    except (TypeError, ValueError) as exc:
        raise invalid(field, f"is not JSON-encodable ({exc})") from None
    except RecursionError:
        raise too_deep from None
    # The number of opening brackets bounds the depth: most values need no walk.
    if text.count("{") + text.count("[") > MAX_JSON_DEPTH and _nesting_exceeds(
        value, MAX_JSON_DEPTH
    ):
        raise too_deep
    if "e+" in text and _HUGE_FLOAT_TEXT.search(text) and _holds_huge_float(value):
        raise invalid(field, f"numbers must be smaller than {MAX_FLOAT_MAGNITUDE:g} in magnitude")
    try:
        encoded = text.encode("utf-8")
    except UnicodeEncodeError:
        raise invalid(field, _UNSTORABLE) from None
    if "\\u0000" in text and _NUL_ESCAPE.search(text) is not None:
        raise invalid(field, _UNSTORABLE)
    return len(encoded)


__all__ = [
    "MAX_FLOAT_MAGNITUDE",
    "MAX_INTEGER_DIGITS",
    "MAX_JSON_DEPTH",
    "OverlongInteger",
    "encoded_size",
    "is_storable_text",
    "parse_json_int",
]
