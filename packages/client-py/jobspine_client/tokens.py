"""Where the client's token comes from, and when it runs out.

A token is a string (used as is, never refreshed) or a callable, plain or async, asked on
each connect and before the current token's ``exp`` (the client then sends ``auth:refresh``).
"""

from __future__ import annotations

import base64
import binascii
import inspect
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

TokenSource = str | Callable[[], str] | Callable[[], Awaitable[str]]

#: Refresh this long before ``exp`` at most...
REFRESH_MARGIN_S = 30.0
#: ...and at most this fraction of the token's lifetime before it.
REFRESH_FRACTION = 0.25


def claims(token: str) -> dict[str, Any]:
    """The token's claims, read without checking the signature (the server checks it); {} for
    anything that is not a JWT."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    try:
        padded = parts[1] + "=" * (-len(parts[1]) % 4)
        decoded = json.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, binascii.Error):
        return {}
    return decoded if isinstance(decoded, dict) else {}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def refresh_delay(
    token: str, *, now: float | None = None, margin_s: float = REFRESH_MARGIN_S
) -> float | None:
    """Seconds from ``now`` until the client should refresh ``token``; None without ``exp``."""
    found = claims(token)
    exp = _number(found.get("exp"))
    if exp is None:
        return None
    current = time.time() if now is None else now
    issued = _number(found.get("iat"))
    lifetime = exp - (issued if issued is not None else current)
    margin = min(margin_s, max(lifetime, 0.0) * REFRESH_FRACTION)
    return max(0.0, exp - margin - current)


class Tokens:
    """The client's token: :meth:`get` asks the source, ``refreshable`` says whether asking
    again can give another one."""

    def __init__(self, source: TokenSource) -> None:
        self._source = source
        self.current: str | None = source if isinstance(source, str) else None

    @property
    def refreshable(self) -> bool:
        return not isinstance(self._source, str)

    async def get(self) -> str:
        if isinstance(self._source, str):
            return self._source
        value = self._source()
        token = await value if inspect.isawaitable(value) else value
        if not isinstance(token, str):
            raise TypeError("the token source must give a string")
        self.current = token
        return token

    def exp(self, token: str) -> float | None:
        return _number(claims(token).get("exp"))


__all__ = ["TokenSource", "Tokens", "claims", "refresh_delay"]
