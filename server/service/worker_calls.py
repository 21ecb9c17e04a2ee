"""Worker calls (the ``/workers`` namespace): claim a job, then heartbeat, progress,
checkpoint, paused, complete and fail under the claim's lease."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from jobspine_shared.events import EventType, PauseReason
from jobspine_shared.models import JobRecord
from jobspine_shared.states import JobState
from server import validation
from server.actors import Actor
from server.errors import NotFound
from server.service.answers import Claim
from server.service.core import CommitCore, Transition, about, states
from server.store.model import NOW, CheckpointWrite, EventSpec, JobChange
from server.store.progress import ProgressWrite

S = JobState
MAX_CLAIM_TYPES = 64


def _lease(value: object) -> str:
    if (
        not isinstance(value, str)
        or not 1 <= len(value) <= 128
        or not validation.is_storable_text(value)
    ):
        raise validation.invalid("lease", "must be the lease string the claim returned")
    return value


class WorkerCalls(CommitCore):
    async def claim(
        self, actor: Actor, *, types: object = None, worker_id: object = None
    ) -> Claim | None:
        if types is None:
            types = []
        if not isinstance(types, list) or len(types) > MAX_CLAIM_TYPES:
            raise validation.invalid("types", f"must be a list of at most {MAX_CLAIM_TYPES} types")
        checked_types = [validation.job_type(t, "types") for t in types]
        if worker_id is None:
            worker_id = actor.id
        if not isinstance(worker_id, str) or not 1 <= len(worker_id) <= 128:
            raise validation.invalid("worker_id", "must be a string of 1 to 128 characters")
        validation.storable_text(worker_id, "worker_id")
        lease = secrets.token_urlsafe(18)
        claimed = await self.store.claim(
            types=checked_types,
            worker_id=worker_id,
            lease=lease,
            max_running_per_user=self.settings.max_running_per_user,
        )
        if claimed is None:
            return None
        about(claimed.job)
        async with self._ordering.hold(claimed.job.id):
            await self._publish(claimed.events, Transition(claimed.job, S.CREATED, S.RUNNING))
        return Claim(job=claimed.job, lease=claimed.lease, checkpoint=claimed.checkpoint)

    async def heartbeat(self, job_id: object, lease: object) -> bool:
        """Prove the worker is alive; returns whether a pause was requested."""
        return await self.store.heartbeat(validation.job_id(job_id), _lease(lease))

    async def update_progress(
        self, job_id: object, lease: object, progress: object, step: object = None
    ) -> JobRecord:
        """Store the report; append its ``job:progress`` event now, or hold it back when the
        job's event rate is reached (:mod:`server.progress_gate`: a trailing event carries
        the latest value once the window closes, and seq never skips)."""
        value = validation.progress(progress)
        text = validation.step(step)
        checked_lease = _lease(lease)
        checked_id = validation.job_id(job_id)
        gate = self.progress_gate
        async with self._ordering.hold(checked_id):
            live = gate.admits(checked_id)
            write = ProgressWrite(lease=checked_lease, progress=value, step=text, with_event=live)
            result = await self.store.update_progress(checked_id, write)
            if live:
                gate.event_appended(checked_id)
                await self._publish(result.events)
            else:
                gate.update_held(checked_id, checked_lease)
                self._on_progress_held()
        return result.job.record

    async def _checkpoint_write(
        self, job_id: str, data: object, progress: object, field: str
    ) -> tuple[CheckpointWrite, float | None]:
        """Validate the checkpoint (before looking the job up: a malformed call is a
        ``validation_error`` whether or not the job exists), then describe the write."""
        checked, size = validation.checkpoint_data(data, self.settings.max_checkpoint_bytes, field)
        value = None if progress is None else validation.progress(progress)
        current = await self.store.get(job_id)
        if current is None:
            raise NotFound()
        write = CheckpointWrite(
            data=checked,
            size_bytes=size,
            progress=current.record.progress if value is None else value,
            keys=tuple(str(k) for k in checked),
        )
        return write, value

    async def checkpoint(
        self, job_id: object, lease: object, data: object, progress: object = None
    ) -> datetime:
        checked_id, checked_lease = validation.job_id(job_id), _lease(lease)
        write, value = await self._checkpoint_write(checked_id, data, progress, "data")
        event_data: dict[str, Any] = {"size_bytes": write.size_bytes}
        fields: dict[str, Any] = {"last_heartbeat_at": NOW}
        if value is not None:
            event_data["progress"] = value
            fields["progress"] = value
        change = JobChange(
            action="checkpoint",
            from_states=states(S.RUNNING),
            lease=checked_lease,
            progress_at_most=value,
            fields=fields,
            checkpoint=write,
            events=(EventSpec(type=EventType.CHECKPOINT, data=event_data),),
        )
        job = await self._change(checked_id, change)
        assert job.record.checkpoint_at is not None
        return job.record.checkpoint_at

    async def paused(self, job_id: object, lease: object, checkpoint: object = None) -> JobRecord:
        """The worker honours a pause request, optionally saving a checkpoint first."""
        checked_id, checked_lease = validation.job_id(job_id), _lease(lease)
        events = [EventSpec(type=EventType.PAUSED, data={"reason": PauseReason.USER.value})]
        write = None
        if checkpoint is not None:
            write, _ = await self._checkpoint_write(checked_id, checkpoint, None, "checkpoint")
            events.insert(
                0, EventSpec(type=EventType.CHECKPOINT, data={"size_bytes": write.size_bytes})
            )
        change = JobChange(
            action="pause",
            from_states=states(S.RUNNING),
            to_state=S.PAUSED,
            lease=checked_lease,
            require_pause_requested=True,
            fields={"paused_at": NOW},
            checkpoint=write,
            events=tuple(events),
        )
        return (await self._change(checked_id, change)).record

    async def complete(self, job_id: object, lease: object, result: object = None) -> JobRecord:
        validation.bounded_size(result, "result", self.settings.max_input_bytes)
        change = JobChange(
            action="complete",
            from_states=states(S.RUNNING),
            to_state=S.COMPLETED,
            lease=_lease(lease),
            fields={"result": result, "progress": 100.0, "completed_at": NOW, "error": None},
            events=(EventSpec(type=EventType.COMPLETED, data={"result": result}),),
        )
        return (await self._change(validation.job_id(job_id), change)).record

    async def fail(self, job_id: object, lease: object, error: object) -> JobRecord:
        if not isinstance(error, dict):
            raise validation.invalid("error", "must be an object {message, code?, retryable?}")
        retryable = error.get("retryable", False)
        if not isinstance(retryable, bool):
            raise validation.invalid("error.retryable", "must be a boolean")
        wire_error = {
            "code": validation.error_code(error.get("code")) or "job_failed",
            "message": validation.error_message(error.get("message")),
            "retryable": retryable,
        }
        return await self._fail(validation.job_id(job_id), wire_error, lease=_lease(lease))


__all__ = ["MAX_CLAIM_TYPES", "WorkerCalls"]
