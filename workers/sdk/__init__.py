"""The jobspine worker SDK: connect to ``/workers``, claim jobs, run handlers under a lease."""

from __future__ import annotations

from workers.sdk.config import WorkerConfig
from workers.sdk.context import Handler, JobContext
from workers.sdk.errors import (
    AckTimeout,
    AuthRefused,
    CheckpointTooLarge,
    ConnectionLost,
    JobWithdrawn,
    PauseCause,
    PauseRequested,
    RetryableError,
    RpcError,
    TransportError,
    WorkerError,
)
from workers.sdk.job_run import JobRun, LeasedJob, Outcome
from workers.sdk.worker import Worker, WorkerStopped

__all__ = [
    "AckTimeout",
    "AuthRefused",
    "CheckpointTooLarge",
    "ConnectionLost",
    "Handler",
    "JobContext",
    "JobRun",
    "JobWithdrawn",
    "LeasedJob",
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
