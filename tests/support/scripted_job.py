"""One job's run (:class:`workers.sdk.job_run.JobRun`) over a scripted connection that
answers the worker RPCs like a server holding one running job."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from jobspine_shared.states import JobState
from tests.support.wire_samples import record
from workers.sdk.config import WorkerConfig
from workers.sdk.context import JobContext
from workers.sdk.errors import RpcError
from workers.sdk.job_run import JobRun, LeasedJob, Outcome


class ScriptedConnection:
    """Answers the worker RPCs like a server holding one running job.

    ``revoke(state)`` makes every later lease-carrying call ``lease_lost``; ``failures``
    queues exceptions per event; ``hold(event)`` makes that event wait until released.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.pause_requested = False
        self.state = "running"
        self.failures: dict[str, list[BaseException]] = {}
        self.connected = True

    async def wait_connected(self) -> None:
        return None

    def revoke(self, state: str) -> None:
        self.state = state

    def events(self) -> list[str]:
        return [event for event, _ in self.calls]

    async def call(
        self, event: str, payload: Mapping[str, Any], *, ack_timeout_s: float | None = None
    ) -> dict[str, Any]:
        self.calls.append((event, dict(payload)))
        queued = self.failures.get(event)
        if queued:
            raise queued.pop(0)
        if self.state != "running":
            raise RpcError("lease_lost", "no longer running", {"state": self.state})
        if event == "heartbeat":
            return {"ok": True, "pause_requested": self.pause_requested}
        if event == "checkpoint":
            return {"ok": True, "checkpoint_at": "2026-11-22T10:00:00Z"}
        if event == "complete":
            self.state = "completed"
        elif event == "fail":
            self.state = "failed"
        elif event == "paused":
            if not self.pause_requested:
                raise RpcError("invalid_transition", "no pause was requested")
            self.state = "paused"
        return {"ok": True}


def make_claim(*, checkpoint: dict[str, Any] | None = None, progress: float = 0.0) -> LeasedJob:
    job = record(input={"query": "q"}, state=JobState.RUNNING, attempt=1, progress=progress)
    return LeasedJob(job=job, lease="lease-1", checkpoint=checkpoint)


def fast_config(**overrides: Any) -> WorkerConfig:
    values: dict[str, Any] = {
        "url": "http://unused",
        "token": "t",
        "heartbeat_interval_s": 0.02,
        "progress_min_interval_s": 60.0,
        "progress_min_delta": 1.0,
        "pause_timeout_s": None,
    }
    values.update(overrides)
    return WorkerConfig(**values)


Handler = Callable[[JobContext], Any]


async def run_job(
    handler: Handler,
    connection: ScriptedConnection,
    *,
    claim: LeasedJob | None = None,
    **config: Any,
) -> tuple[JobRun, Outcome]:
    run = JobRun(claim or make_claim(), handler, connection, fast_config(**config))
    outcome = await asyncio.wait_for(run.run(), 10)
    return run, outcome
