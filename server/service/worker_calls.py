"""Worker calls (the ``/workers`` namespace): claim a job, then heartbeat, progress,
checkpoint, paused, complete and fail under the claim's lease. Each takes the command its
parser (:mod:`server.commands.worker`) built; sizes are bounded here, by the settings."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from jobspine_shared.events import EventType, PauseReason
from jobspine_shared.models import JobRecord
from jobspine_shared.states import JobState
from server import validation
from server.commands.worker import (
    CheckpointData,
    ClaimJobs,
    CompleteJob,
    FailJob,
    LeaseCall,
    ReportPaused,
    ReportProgress,
    SaveCheckpoint,
)
from server.errors import PayloadTooLarge
from server.service.core import CommitCore, Transition, about
from server.store.model import (
    NOW,
    CheckpointWrite,
    ClaimResult,
    EventSpec,
    JobChange,
)
from server.store.progress import ProgressWrite

S = JobState


class WorkerCalls(CommitCore):
    async def claim(self, command: ClaimJobs) -> ClaimResult | None:
        """Claim a job; its ``job:started`` goes out before any later event of the job
        (:mod:`server.service.publishing`: the claim is in flight until its events are in
        the job's line)."""
        claims = self._claims
        number = claims.start()
        handed_over = False  # to a task that puts the events of a cancelled claim
        try:
            claimed = await self.store.claim(
                types=list(command.types),
                worker_id=command.worker_id,
                lease=secrets.token_urlsafe(18),
                max_running_per_user=self.settings.max_running_per_user,
            )
            if claimed is None:
                return None
            about(claimed.job)
            job_id, events = claimed.job.id, claimed.events
            claims.claimed(number, job_id)
            started = Transition(claimed.job, S.CREATED, S.RUNNING)

            async def section() -> None:
                self._put(job_id, events, started)
                claims.finish(number)

            try:
                await self._in_order(job_id, section)
            except asyncio.CancelledError:
                if number in claims:  # before its section: a task puts its events
                    self._leave(job_id, self._claim_left(job_id, section, number))
                    handed_over = True
                raise
        finally:
            if not handed_over:
                claims.finish(number)
        return claimed

    async def _claim_left(
        self, job_id: str, section: Callable[[], Awaitable[None]], number: int
    ) -> None:
        """The section of a claim cancelled before it took its job's lock: its events put
        in their turn (ahead of later ones, :mod:`server.service.publishing`), and the
        changes that wait for it released whatever happens."""
        try:
            await self._in_order(job_id, section)
        finally:
            self._claims.finish(number)

    async def heartbeat(self, call: LeaseCall) -> bool:
        """Prove the worker is alive; returns whether a pause was requested."""
        return await self.store.heartbeat(call.job_id, call.lease)

    async def update_progress(self, report: ReportProgress) -> None:
        """Store the report; append its ``job:progress`` event now, or hold it back when the
        job's event rate is reached (:mod:`server.progress_gate`: a trailing event carries
        the latest value once the window closes, and seq never skips)."""
        job_id, lease, gate = report.job_id, report.lease, self.progress_gate

        async def section() -> None:
            live = gate.admits(job_id)
            write = ProgressWrite(
                lease=lease, progress=report.progress, step=report.step, with_event=live
            )
            try:
                result = await self.store.update_progress(job_id, write)
            except asyncio.CancelledError:
                # Written or not (a store may write it for a caller that gave up: the
                # Postgres batch does), its value is owed an event: the held report's
                # trailing event writes it again with one (a second event of the same value
                # when the first was stored, which clients take as any other).
                gate.update_held(job_id, write)
                raise
            if live:
                gate.event_appended(job_id)
                self._put(job_id, result.events)
            else:
                gate.update_held(job_id, write)
                self._on_progress_held()

        await self._in_order(job_id, section)

    def _checkpoint_write(
        self, checkpoint: CheckpointData, progress: float | None, field: str
    ) -> CheckpointWrite:
        """Bound the checkpoint (a call over the limit is refused whether or not the job
        exists), then describe the write; without ``progress``, the checkpoint's is the job's
        when the change applies (the store reads it in the same step)."""
        limit = self.settings.max_checkpoint_bytes
        if checkpoint.size_bytes > limit:
            raise PayloadTooLarge(
                f"{field}: checkpoint of {checkpoint.size_bytes} bytes exceeds {limit}",
                details={"size_bytes": checkpoint.size_bytes, "max_bytes": limit},
            )
        return CheckpointWrite(
            data=checkpoint.value,
            size_bytes=checkpoint.size_bytes,
            progress=progress,
            keys=tuple(str(k) for k in checkpoint.value),
        )

    async def checkpoint(self, command: SaveCheckpoint) -> datetime:
        value = command.progress
        write = self._checkpoint_write(command.checkpoint, value, "data")
        event_data: dict[str, Any] = {"size_bytes": write.size_bytes}
        fields: dict[str, Any] = {"last_heartbeat_at": NOW}
        if value is not None:
            event_data["progress"] = value
            fields["progress"] = value
        change = JobChange(
            action="checkpoint",
            lease=command.lease,
            progress_at_most=value,
            fields=fields,
            checkpoint=write,
            events=(EventSpec(type=EventType.CHECKPOINT, data=event_data),),
        )
        job = await self._change(command.job_id, change)
        assert job.record.checkpoint_at is not None
        return job.record.checkpoint_at

    async def paused(self, command: ReportPaused) -> JobRecord:
        """The worker honours a pause request, optionally saving a checkpoint first."""
        events = [EventSpec(type=EventType.PAUSED, data={"reason": PauseReason.USER.value})]
        write = None
        if command.checkpoint is not None:
            write = self._checkpoint_write(command.checkpoint, None, "checkpoint")
            events.insert(
                0, EventSpec(type=EventType.CHECKPOINT, data={"size_bytes": write.size_bytes})
            )
        change = JobChange(
            action="pause",
            to_state=S.PAUSED,
            lease=command.lease,
            require_pause_requested=True,
            fields={"paused_at": NOW},
            checkpoint=write,
            events=tuple(events),
        )
        return (await self._change(command.job_id, change)).record

    async def complete(self, command: CompleteJob) -> JobRecord:
        validation.refuse_oversize(
            command.result.size_bytes, "result", self.settings.max_input_bytes
        )
        result = command.result.value
        change = JobChange(
            action="complete",
            to_state=S.COMPLETED,
            lease=command.lease,
            fields={"result": result, "progress": 100.0, "completed_at": NOW, "error": None},
            events=(EventSpec(type=EventType.COMPLETED, data={"result": result}),),
        )
        return (await self._change(command.job_id, change)).record

    async def fail(self, command: FailJob) -> JobRecord:
        return await self._fail(command.job_id, command.error, lease=command.lease)


__all__ = ["WorkerCalls"]
