"""The part of a :class:`~workers.sdk.context.JobContext` that does not talk to a server:
the claimed job, its resume checkpoint, and pause requests delivered once per cause.

Shared by the SDK's :class:`~workers.sdk.context.LiveJobContext` and the in-memory
:class:`~workers.testing.FakeJobContext`, so a handler meets the same pause rules in a unit
test as on a real worker.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from jobspine_shared.models import JobRecord
from workers.sdk.errors import PauseCause, PauseRequested


class JobView:
    """A claimed job as its handler reads it, and its pause requests."""

    def __init__(self, job: JobRecord, checkpoint_data: dict[str, Any] | None) -> None:
        self._job = job
        self._checkpoint_data = checkpoint_data
        #: Progress may not go down within an attempt; a resumed one starts at the claimed value.
        self._floor = job.progress
        self._pause_event = asyncio.Event()
        self._pause_cause: PauseCause | None = None
        self._delivered: set[PauseCause] = set()

    @property
    def job(self) -> JobRecord:
        return self._job

    @property
    def attempt(self) -> int:
        return self._job.attempt

    @property
    def retries(self) -> int:
        return self._job.retries

    @property
    def deadline(self) -> datetime | None:
        started, timeout = self._job.started_at, self._job.timeout_s
        if started is None or timeout is None:
            return None
        return started + timedelta(seconds=timeout)

    @property
    def checkpoint_data(self) -> dict[str, Any] | None:
        return self._checkpoint_data

    @property
    def pause_requested(self) -> bool:
        return self._pause_event.is_set()

    @property
    def pause_cause(self) -> PauseCause | None:
        return self._pause_cause

    async def wait_for_pause_request(self) -> None:
        await self._pause_event.wait()

    def request_pause(self, cause: PauseCause) -> None:
        """Ask the handler to save and stop at its next pause point (a shutdown outranks a
        user's pause)."""
        if self._pause_cause is None or cause is PauseCause.SHUTDOWN:
            self._pause_cause = cause
        self._pause_event.set()

    def _deliver_pause(self) -> None:
        """Raise :class:`PauseRequested` once per requested cause."""
        cause = self._pause_cause
        if cause is not None and cause not in self._delivered:
            self._delivered.add(cause)
            raise PauseRequested(cause)
