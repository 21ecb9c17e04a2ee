"""Exceptions of the worker SDK.

Two families matter to callers: :class:`TransportError` ("the server did not answer; the call may
or may not have happened, try again once connected") and :class:`RpcError` ("the server answered
no"). Keeping them apart is what lets the SDK retry the first and act on the second.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any


class WorkerError(Exception):
    """Root of the SDK's own errors."""


class TransportError(WorkerError):
    """No answer from the server: not connected, connection dropped, or the ack timed out."""


class ConnectionLost(TransportError):
    """The connection is down (or went down while waiting for an ack)."""


class AckTimeout(TransportError):
    """The server did not acknowledge a call in time; the SDK reconnects."""


class RpcError(WorkerError):
    """The server refused a call: ``{ok: false, error: {code, message, details?}}``."""

    def __init__(self, code: str, message: str, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.details: dict[str, Any] = dict(details or {})


class JobWithdrawn(RpcError):
    """The server took this job away from the worker: a call under its lease was refused
    with ``lease_lost``, ``not_found`` or ``validation_error``, or the lease was revoked.

    After this, the SDK never writes for that lease again. (The server's
    :class:`server.errors.LeaseLost` is the narrower refusal ``lease_lost`` itself.)
    """

    @property
    def job_state(self) -> str | None:
        """The job's current state when the server named it (``lease_lost`` details)."""
        state = self.details.get("state")
        return state if isinstance(state, str) else None


class CheckpointTooLarge(RpcError):
    """The server refused a checkpoint over ``MAX_CHECKPOINT_BYTES`` (``payload_too_large``).

    Raised into the handler, which may save less; if it propagates, the job fails with it.
    """


class AuthRefused(WorkerError):
    """The server refused the worker's token (``unauthorized``/``forbidden``): fatal, no retry."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class PauseCause(enum.StrEnum):
    """Why a handler is asked to save and stop."""

    #: A user asked to pause the job; the SDK reports ``paused`` afterwards.
    USER = "user"
    #: The worker is shutting down; the SDK disconnects without writing and the server's
    #: supervisor pauses the stale job (it has a checkpoint) for a later resume.
    SHUTDOWN = "shutdown"


class PauseRequested(BaseException):
    """Raised into a handler at a pause point when it should stop after saving its state.

    A ``BaseException`` (like :class:`asyncio.CancelledError`) so that a handler's broad
    ``except Exception`` does not swallow it. A handler that wants to save something fresher
    may catch it, ``await ctx.checkpoint(...)`` and re-raise.
    """

    def __init__(self, cause: PauseCause = PauseCause.USER) -> None:
        super().__init__(f"pause requested ({cause})")
        self.cause = cause


class RetryableError(Exception):
    """Raise from a handler to fail this attempt as retryable: the server retries the job
    when its ``retry.max_attempts`` allow (contract v2), after the policy's backoff, and the
    next attempt resumes from the latest checkpoint. ``code`` names the error."""

    def __init__(self, message: str, *, code: str = "retryable_error") -> None:
        super().__init__(message)
        self.code = code
