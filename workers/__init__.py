"""jobspine workers: the worker SDK (:mod:`workers.sdk`), the example workers
(:mod:`workers.examples`) and the reference Python client for following a job
(:mod:`workers.client`).

The SDK's public API is re-exported here::

    from workers import JobContext, PauseRequested, Worker, WorkerConfig
"""

from __future__ import annotations

from workers.sdk import (
    CheckpointTooLarge,
    Handler,
    JobContext,
    PauseCause,
    PauseRequested,
    RetryableError,
    Worker,
    WorkerConfig,
    WorkerStopped,
)

__all__ = [
    "CheckpointTooLarge",
    "Handler",
    "JobContext",
    "PauseCause",
    "PauseRequested",
    "RetryableError",
    "Worker",
    "WorkerConfig",
    "WorkerStopped",
]
