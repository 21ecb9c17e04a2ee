"""Helpers for testing handlers without a server.

:class:`FakeJobContext` implements :class:`~workers.sdk.context.JobContext` in memory: it
records progress reports and checkpoints and can simulate a pause request, so a handler's
step logic, resume-from-checkpoint and pause behaviour are unit-testable::

    ctx = FakeJobContext("research", {"query": "q"}, pause_after_checkpoints=2)
    with pytest.raises(PauseRequested):
        await handle(ctx)
    resumed = FakeJobContext("research", {"query": "q"}, checkpoint=ctx.checkpoints[-1])
    result = await handle(resumed)
"""

from __future__ import annotations

import asyncio
import inspect
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from jobspine_shared.models import JobRecord
from jobspine_shared.states import JobState
from workers.sdk.context import check_progress, check_step, json_object_copy
from workers.sdk.errors import PauseCause
from workers.sdk.job_view import JobView


class FakeJobContext(JobView):
    """An in-memory :class:`~workers.sdk.context.JobContext` with the SDK's checks.

    It validates like the real one (progress in [0, 100] and never down, checkpoint data a
    JSON object) and raises :class:`PauseRequested` at the same pause points: after a
    checkpoint is saved, and at :meth:`pause_point`, once per request.
    """

    def __init__(
        self,
        job_type: str = "test",
        job_input: Mapping[str, Any] | None = None,
        *,
        checkpoint: dict[str, Any] | None = None,
        pause_after_checkpoints: int | None = None,
        job: JobRecord | None = None,
    ) -> None:
        now = datetime.now(UTC)
        record = job or JobRecord(
            id=str(uuid.uuid4()),
            user_id="test-user",
            type=job_type,
            input=dict(job_input or {}),
            state=JobState.RUNNING,
            attempt=1,
            created_at=now,
            updated_at=now,
            epoch="test",
        )
        super().__init__(record, checkpoint)
        self._pause_after = pause_after_checkpoints
        self.progress_reports: list[tuple[float, str | None]] = []
        self.checkpoints: list[dict[str, Any]] = []

    def request_pause(self, cause: PauseCause = PauseCause.USER) -> None:
        super().request_pause(cause)

    async def progress(self, value: float, step: str | None = None) -> None:
        self._floor = check_progress(value, self._floor)
        self.progress_reports.append((self._floor, check_step(step)))

    async def checkpoint(self, data: Mapping[str, Any], progress: float | None = None) -> None:
        copy = json_object_copy(data, "checkpoint data")
        if progress is not None:
            self._floor = check_progress(progress, self._floor)
        self.checkpoints.append(copy)
        if self._pause_after is not None and len(self.checkpoints) >= self._pause_after:
            self._pause_after = None
            self.request_pause()
        await self.pause_point()

    async def pause_point(self) -> None:
        self._deliver_pause()


async def wait_until(
    predicate: Callable[[], bool | Awaitable[bool]],
    *,
    within_s: float = 5.0,
    interval: float = 0.01,
    what: str = "condition",
) -> None:
    """Poll ``predicate`` (sync or async) until it is true; fail after ``within_s`` seconds.

    For tests: waiting on a condition with a deadline, instead of sleeping and hoping.
    """
    deadline = time.monotonic() + within_s
    while True:
        outcome = predicate()
        if inspect.isawaitable(outcome):
            outcome = await outcome
        if outcome:
            return
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} not met within {within_s}s")
        await asyncio.sleep(interval)
