"""The jobspine worker SDK: connect to ``/workers``, claim jobs, run handlers under a lease."""

from __future__ import annotations

from workers.sdk.config import WorkerConfig
from workers.sdk.context import Handler, JobContext
from workers.sdk.errors import (
    AckTimeout,
    AuthRefused,
    CheckpointTooLarge,
    ConnectionLost,
    LeaseLost,
    PauseCause,
    PauseRequested,
    RetryableError,
    RpcError,
    TransportError,
    WorkerError,
)
from workers.sdk.job_run import Claim, JobRun, Outcome
from workers.sdk.worker import Worker, WorkerStopped

__all__ = [
    "AckTimeout",
    "AuthRefused",
    "CheckpointTooLarge",
    "Claim",
    "ConnectionLost",
    "Handler",
    "JobContext",
    "JobRun",
    "LeaseLost",
    "Outcome",
    "PauseCause",
    "PauseRequested",
    "RetryableError",
    "RpcError",
    "TransportError",
    "Worker",
    "WorkerConfig",
    "WorkerError",
    "WorkerStopped",
]
