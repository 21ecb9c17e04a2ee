"""The one shape of a refusal by a limit: ``rate_limited`` with ``details: {limit,
retry_after_s}``; REST turns ``retry_after_s`` into ``Retry-After``."""

from __future__ import annotations

import math

from server.errors import RateLimited


def rate_limited(limit: str, retry_after_s: float, message: str) -> RateLimited:
    """The error for a call refused by ``limit`` (a lower-case name of its variable)."""
    return RateLimited(
        message,
        details={"limit": limit, "retry_after_s": round(max(retry_after_s, 0.0), 3)},
    )


def retry_after_header(error: RateLimited) -> str:
    """``Retry-After`` in whole seconds (at least 1) for a refusal of :func:`rate_limited`."""
    seconds = (error.details or {}).get("retry_after_s", 1)
    number = float(seconds) if isinstance(seconds, (int, float)) else 1.0
    return str(max(1, math.ceil(number)))


__all__ = ["rate_limited", "retry_after_header"]
