"""An unexpected exception inside the server, to check that clients see only a generic
``internal_error`` while the log keeps the exception."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.server import LiveServer

#: The exception's message: it must reach the log, never a client.
SECRET = "secret internals"


def break_repository(monkeypatch: pytest.MonkeyPatch, server: LiveServer, method: str) -> None:
    """Make ``method`` of ``server``'s repository raise ``RuntimeError(SECRET)``."""

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(SECRET)

    monkeypatch.setattr(server.repository, method, broken)


def secret_logged(caplog: pytest.LogCaptureFixture) -> bool:
    """The exception was logged with its traceback."""
    return any(r.exc_info and SECRET in str(r.exc_info[1]) for r in caplog.records)
