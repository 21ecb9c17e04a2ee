"""Domain checks on values that reach the service layer, shared by every transport."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import attrs

from jobspine_shared.models import (
    JOB_TYPE_PATTERN,
    MAX_ERROR_CODE_LENGTH,
    MAX_ERROR_MESSAGE_LENGTH,
    MAX_STEP_LENGTH,
)
from server.errors import PayloadTooLarge, ValidationFailed


def invalid(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"{field}: {message}", details={"field": field})


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


#: The canonical text of a UUID (what ``str(uuid.UUID(...))`` gives): lowercase hex in
#: 8-4-4-4-12 groups. A regex, not a ``uuid.UUID`` round trip: every worker call checks an
#: id, and this is several times faster (measured in docs/performance.md).
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def is_job_id(value: object) -> bool:
    """Job ids are canonical lowercase UUID strings."""
    return isinstance(value, str) and _CANONICAL_UUID.fullmatch(value) is not None


def job_id(value: object, field: str = "job_id") -> str:
    if not isinstance(value, str):
        raise invalid(field, "must be a string")
    if not is_job_id(value):
        raise invalid(field, "is not a job id")
    return value


def job_type(value: object, field: str = "type") -> str:
    if not isinstance(value, str) or not JOB_TYPE_PATTERN.fullmatch(value):
        raise invalid(field, "must be 1 to 64 characters of [a-z0-9_.-]")
    return value


def progress(value: object, field: str = "progress") -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid(field, "must be a number")
    if not math.isfinite(value) or not 0 <= value <= 100:
        raise invalid(field, "must be a finite number in [0, 100]")
    return float(value)


#: Characters no store can hold: NUL (Postgres ``text`` and ``jsonb`` refuse it) and unpaired
#: surrogates (JSON can carry them as ``\ud800`` escapes, UTF-8 cannot encode them).
_UNSTORABLE_CHARACTER = re.compile("[\x00\ud800-\udfff]")
#: A NUL escape in compact JSON text: ``\u0000`` after an even number of backslashes.
_NUL_ESCAPE = re.compile(r"(?:^|[^\\])(?:\\\\)*\\u0000")
_UNSTORABLE = "must not contain NUL or unpaired surrogate characters"


def is_storable_text(value: str) -> bool:
    return _UNSTORABLE_CHARACTER.search(value) is None


def storable_text(value: str, field: str) -> str:
    if not is_storable_text(value):
        raise invalid(field, _UNSTORABLE)
    return value


def optional_text(value: object, field: str, max_length: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid(field, "must be a string")
    if len(value) > max_length:
        raise invalid(field, f"must be at most {max_length} characters")
    return storable_text(value, field)


def step(value: object) -> str | None:
    return optional_text(value, "step", MAX_STEP_LENGTH)


def error_message(value: object) -> str:
    text = optional_text(value, "error.message", MAX_ERROR_MESSAGE_LENGTH)
    if text is None:
        raise invalid("error.message", "is required")
    return text


def error_code(value: object) -> str | None:
    return optional_text(value, "error.code", MAX_ERROR_CODE_LENGTH)


def json_object(value: object, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid(field, "must be a JSON object")
    return value


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


def bounded_size(value: object, field: str, max_bytes: int) -> int:
    """:func:`encoded_size`, refused as ``payload_too_large`` above ``max_bytes``
    (``MAX_INPUT_BYTES`` for a job's input and result)."""
    size = encoded_size(value, field)
    if size > max_bytes:
        raise PayloadTooLarge(
            f"{field} is {size} bytes of compact JSON; at most {max_bytes} are allowed",
            details={"field": field, "size": size, "limit": max_bytes},
        )
    return size


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


def checkpoint_data(
    value: object, max_bytes: int, field: str = "data"
) -> tuple[dict[str, Any], int]:
    data = json_object(value, field)
    size = encoded_size(data, field)
    if size > max_bytes:
        raise PayloadTooLarge(
            f"{field}: checkpoint of {size} bytes exceeds {max_bytes}",
            details={"size_bytes": size, "max_bytes": max_bytes},
        )
    return data, size


def after_seq(value: object, field: str = "after_seq") -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise invalid(field, "must be a non-negative integer")
    return value
