"""Logging of the web process: ``LOG_FORMAT`` (json|text), ``LOG_LEVEL``, ``ACCESS_LOG``.

The formatters and the context (request, job, correlation, user, worker ids) are shared with
the worker SDK in :mod:`jobspine_shared.logcontext`.
"""

from __future__ import annotations

from jobspine_shared.logcontext import (
    JsonFormatter,
    TextFormatter,
    bind,
    configure_from_env,
    configure_logging,
    log_context,
)

#: The logger of the per-request access line (``ACCESS_LOG=0`` turns it off).
ACCESS_LOGGER = "jobspine.access"

__all__ = [
    "ACCESS_LOGGER",
    "JsonFormatter",
    "TextFormatter",
    "bind",
    "configure_from_env",
    "configure_logging",
    "log_context",
]
