"""Log context shared by the web process and the worker SDK: who a log line is about.

Values live in :mod:`contextvars`, so each request, Socket.IO call or job run carries its own
``request_id``, ``job_id``, ``correlation_id``, ``user_id`` and ``worker_id`` into every log
line written while it runs (see :class:`JsonFormatter`). ``LOG_FORMAT=json|text`` and
``LOG_LEVEL`` select the output for both processes (:func:`configure_logging`).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Iterator, Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, ParamSpec, TypeVar

#: The fields a log line may carry about what it concerns, in output order.
CONTEXT_FIELDS = ("request_id", "job_id", "correlation_id", "user_id", "worker_id")

_EMPTY: Mapping[str, str] = MappingProxyType({})
_context: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar(
    "jobspine_log_context", default=_EMPTY
)

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s%(context)s"
LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def current_context() -> Mapping[str, str]:
    return _context.get()


def bind(**values: str | None) -> contextvars.Token[Mapping[str, str]]:
    """Add values to the context of this task (``None`` leaves a field as it was)."""
    merged = dict(_context.get())
    merged.update({k: v for k, v in values.items() if v is not None and k in CONTEXT_FIELDS})
    return _context.set(merged)


def restore(token: contextvars.Token[Mapping[str, str]]) -> None:
    """Undo the :func:`bind` that returned ``token`` (what :func:`log_context` does on exit,
    for a caller on a hot path that binds and restores without a context manager)."""
    _context.reset(token)


def new_request_id() -> str:
    """A fresh request id: 32 hex digits of 128 random bits (what ``uuid.uuid4().hex`` holds
    in its random part, from the same source, without building a ``UUID``: a sixth of the
    cost, and every Socket.IO call takes one)."""
    return os.urandom(16).hex()


@contextlib.contextmanager
def log_context(**values: str | None) -> Iterator[None]:
    """The values for the log lines written inside the block."""
    token = bind(**values)
    try:
        yield
    finally:
        _context.reset(token)


P = ParamSpec("P")
R = TypeVar("R")


def own_context(method: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Values bound during each call of ``method`` end with the call: for code run by
    long-lived tasks (the supervisor's scans) that binds a job's ids per job."""

    @functools.wraps(method)
    async def scoped(*args: P.args, **kwargs: P.kwargs) -> R:
        with log_context():
            return await method(*args, **kwargs)

    return scoped


def _fields(record: logging.LogRecord) -> dict[str, str]:
    """The context the record was made in (:func:`_record_with_context`), and values given
    with ``extra=``, which win."""
    fields = dict(getattr(record, "jobspine_context", None) or _context.get())
    for name in CONTEXT_FIELDS:
        value = record.__dict__.get(name)
        if isinstance(value, str):
            fields[name] = value
    return fields


_base_factory = logging.getLogRecordFactory()


def _record_with_context(*args: Any, **kwargs: Any) -> logging.LogRecord:
    """Records keep the context they were made in, for handlers that format them later."""
    record = _base_factory(*args, **kwargs)
    record.jobspine_context = _context.get()
    return record


if getattr(_base_factory, "__name__", "") != _record_with_context.__name__:
    logging.setLogRecordFactory(_record_with_context)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, the context, and ``exc`` (the whole
    traceback as one string) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, str] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = _fields(record)
        line.update({name: fields[name] for name in CONTEXT_FIELDS if name in fields})
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exc"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """Human lines; the context as ``key=value`` at the end; tracebacks folded into the line
    (newlines shown as ``\\n``)."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        fields = _fields(record)
        record.context = "".join(
            f" {name}={fields[name]}" for name in CONTEXT_FIELDS if name in fields
        )
        return super().format(record).replace("\r", "").replace("\n", "\\n")


def parse_log_format(value: str | None) -> str:
    fmt = (value or "text").strip().lower() or "text"
    if fmt not in LOG_FORMATS:
        raise ValueError(f"LOG_FORMAT: expected json or text, got {value!r}")
    return fmt


def parse_log_level(value: str | None, default: str = "INFO") -> int:
    level = (value or default).strip().upper() or default
    if level not in LOG_LEVELS:
        raise ValueError(f"LOG_LEVEL: expected one of {', '.join(LOG_LEVELS)}, got {value!r}")
    return logging.getLevelName(level)  # type: ignore[no-any-return]


def configure_logging(fmt: str = "text", level: int = logging.INFO) -> None:
    """Log to stderr, one line per record, in ``fmt`` (``json`` or ``text``)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def configure_from_env(environ: Mapping[str, str]) -> None:
    """``LOG_FORMAT`` and ``LOG_LEVEL`` of ``environ``; raises ValueError naming a bad one."""
    fmt = parse_log_format(environ.get("LOG_FORMAT"))
    level = parse_log_level(environ.get("LOG_LEVEL"))
    configure_logging(fmt, level)


__all__ = [
    "CONTEXT_FIELDS",
    "JsonFormatter",
    "TextFormatter",
    "bind",
    "configure_from_env",
    "configure_logging",
    "current_context",
    "log_context",
    "new_request_id",
    "own_context",
    "parse_log_format",
    "parse_log_level",
    "restore",
]
