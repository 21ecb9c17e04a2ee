"""Which failures mean "Postgres cannot be reached right now", and the one place they become
:class:`server.errors.Unavailable` (HTTP 503); the pool reconnects by itself when Postgres
returns."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Final

import asyncpg

from server.errors import Unavailable

#: Failures that say "Postgres cannot be reached right now", not "this request is wrong".
OUTAGE_ERRORS: Final[tuple[type[BaseException], ...]] = (
    OSError,
    TimeoutError,  # also asyncpg's command timeout and the pool's acquire timeout
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
    # The database itself is gone or not (yet) ours: an operator's problem that ends when
    # it is restored, so callers get 503 and the pool keeps trying, as for a down server.
    asyncpg.exceptions.InvalidCatalogNameError,
    asyncpg.exceptions.InvalidAuthorizationSpecificationError,
    asyncpg.InterfaceError,  # among others ConnectionDoesNotExistError, "pool is closing"
    # The protocol is in a state no request can start from; seen when a backend's FATAL
    # (a Postgres restart) arrived but its socket's EOF has not been processed yet.
    asyncpg.exceptions.InternalClientError,
)

#: InterfaceErrors raised for a bad value or configuration: bugs to surface, not outages.
_CLIENT_BUGS: Final[tuple[type[BaseException], ...]] = (
    asyncpg.exceptions.DataError,
    asyncpg.exceptions.ClientConfigurationError,
    asyncpg.exceptions.UnsupportedClientFeatureError,
)


@contextlib.contextmanager
def unavailable_on_outage() -> Iterator[None]:
    """Turn a connection-level failure into ``Unavailable`` (HTTP 503), the contract's answer
    while the store is unreachable; domain errors and bugs pass through unchanged."""
    try:
        yield
    except _CLIENT_BUGS:
        raise
    except OUTAGE_ERRORS as exc:
        raise Unavailable() from exc


__all__ = ["OUTAGE_ERRORS", "unavailable_on_outage"]
