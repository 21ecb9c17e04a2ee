"""Worker configuration: every knob with a default that suits production, validated once."""

from __future__ import annotations

import math
import os
import socket
import uuid
from collections.abc import Callable
from typing import Any

import attrs


def _positive(instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if isinstance(value, bool) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{attribute.name} must be a positive number, got {value!r}")


def _not_negative(instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if isinstance(value, bool) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{attribute.name} must not be negative, got {value!r}")


def _optional_positive(instance: Any, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None:
        _positive(instance, attribute, value)


def _fraction(instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if not 0 <= value < 1:
        raise ValueError(f"{attribute.name} must be in [0, 1), got {value!r}")


def _at_least_one(instance: Any, attribute: attrs.Attribute[Any], value: int) -> None:
    if isinstance(value, bool) or value < 1:
        raise ValueError(f"{attribute.name} must be at least 1, got {value!r}")


def _seconds(default: float, *, zero_ok: bool = False) -> float:
    """A duration field: a finite number of seconds > 0 (>= 0 with ``zero_ok``)."""
    field: float = attrs.field(default=default, validator=_not_negative if zero_ok else _positive)
    return field


def default_worker_id() -> str:
    """Host, pid and a short random suffix: unique per process, readable in logs and events."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


@attrs.frozen(kw_only=True)
class WorkerConfig:
    """How a :class:`~workers.sdk.worker.Worker` connects, claims, reports and stops."""

    #: Base URL of the jobspine ``web`` process, e.g. ``http://127.0.0.1:8080``.
    url: str
    #: A worker JWT (``role: worker``), or a callable giving the current one (e.g.
    #: :func:`workers.sdk.rpc.token_from_file`); sent as ``auth: {token}`` on every
    #: (re)connect, so a refreshed token is used after the server ends an expired session.
    token: str | Callable[[], str] = attrs.field(repr=False)
    namespace: str = "/workers"
    #: Sent with ``claim``; shows up in ``job:started`` events. The token's ``sub`` is the
    #: authenticated identity; this tells processes of one identity apart.
    worker_id: str = attrs.field(factory=default_worker_id)
    #: Jobs run at the same time.
    concurrency: int = attrs.field(default=4, validator=_at_least_one)
    #: Heartbeat period of each running job; keep it well under the server's
    #: ``HEARTBEAT_TIMEOUT_S`` (default 30) so a slow handler never looks stale.
    heartbeat_interval_s: float = _seconds(5.0)
    #: Wait between claims while nothing is claimable, jittered by ±``poll_jitter``.
    poll_interval_s: float = _seconds(1.0)
    poll_jitter: float = attrs.field(default=0.25, validator=_fraction)
    #: Progress coalescing: a report goes out when it moved by ``progress_min_delta`` (or the
    #: step text changed) and ``progress_min_interval_s`` passed since the last one.
    progress_min_delta: float = attrs.field(default=0.5, validator=_not_negative)
    progress_min_interval_s: float = _seconds(0.5, zero_ok=True)
    #: How long to wait for an RPC ack before assuming the server is gone and reconnecting.
    ack_timeout_s: float = _seconds(10.0)
    connect_timeout_s: float = _seconds(5.0)
    reconnect_initial_s: float = _seconds(0.5)
    reconnect_max_s: float = _seconds(30.0)
    #: On stop: how long running handlers may take to finish on their own.
    grace_period_s: float = _seconds(10.0, zero_ok=True)
    #: After the grace period: how long handlers still running get to save a checkpoint
    #: (they see ``PauseRequested(SHUTDOWN)`` at their next pause point) before they are
    #: cancelled and the worker disconnects.
    shutdown_checkpoint_s: float = _seconds(5.0, zero_ok=True)
    #: After a user's pause request, how long a handler has to reach a pause point before it
    #: is cancelled and the job is reported paused with its latest checkpoint. None: no limit.
    pause_timeout_s: float | None = attrs.field(default=30.0, validator=_optional_positive)
    #: Append the traceback to the failure message of a handler exception.
    send_tracebacks: bool = False
    #: Engine.IO transports; websocket only by default (fast failure detection).
    transports: tuple[str, ...] | None = ("websocket",)
