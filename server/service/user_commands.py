"""User commands: create, pause, resume, cancel, restart and delete a job (REST and the
``/`` namespace); each one authorises the actor, describes one change and commits it."""

from __future__ import annotations

import uuid
from typing import Any

import attrs

from jobspine_shared.events import EventType, PauseReason
from jobspine_shared.models import JobRecord
from jobspine_shared.states import JobState
from jobspine_shared.wire import job_to_wire
from server import validation
from server.actors import Actor, require_user_role
from server.commands.create import CreateJob
from server.commands.user import RestartJob
from server.errors import Conflict
from server.limits.active_jobs import check_active_jobs
from server.service.answers import Created
from server.service.core import CommitCore, Transition, about, states
from server.store.base import NewJob
from server.store.model import (
    CLEAR_CHECKPOINT,
    NOW,
    ChangeResult,
    EventSpec,
    JobChange,
    StoredJob,
)

S = JobState


class UserCommands(CommitCore):
    async def create(
        self, actor: Actor, command: CreateJob, *, request_id: str | None = None
    ) -> Created:
        """Create a job, or answer the one this user's idempotency key already names.

        ``request_id`` becomes the ``correlation_id`` when the command has none.
        """
        require_user_role(actor, "create jobs")
        validation.bounded_size(command.input, "input", self.settings.max_input_bytes)
        await check_active_jobs(self.store, actor, self.settings.max_active_jobs_per_user)
        if command.parent_id is not None:
            parent = await self._visible(actor, command.parent_id)
            if parent.record.user_id != actor.id:
                raise validation.invalid("parent_id", "must be a job of the same user")
        if command.correlation_id is None and request_id is not None:
            command = attrs.evolve(command, correlation_id=request_id)
        job = NewJob(id=str(uuid.uuid4()), user_id=actor.id, epoch=uuid.uuid4().hex, spec=command)
        event = EventSpec(
            type=EventType.CREATED, data=lambda created: {"job": job_to_wire(created.record)}
        )

        async def section() -> ChangeResult:
            result = await self.store.create(
                job, event=event, idempotency_ttl_s=self.settings.idempotency_ttl_s
            )
            record = result.job.record
            about(record)
            created = None if result.existing else Transition(record, None, record.state)
            self._put(job.id, result.events, created)
            return result

        result = await self._in_order(job.id, section)
        record = result.job.record
        if result.existing and not command.same_request(record):
            raise Conflict(
                "this idempotency key was used for a job of another type or input",
                details={"job_id": record.id, "idempotency_key": command.idempotency_key},
            )
        if not result.existing:
            await self._became_claimable(record)
        return Created(job=record, existing=result.existing)

    async def pause(self, actor: Actor, job_id: str) -> JobRecord:
        """A user's pause: hold a created job, or ask the worker of a running job to pause
        (a request the worker honours with its ``paused`` call)."""
        job = await self._visible(actor, job_id)
        if job.record.state is S.RUNNING:
            if job.record.pause_requested:
                return job.record
            change = JobChange(
                action="pause",
                from_states=states(S.RUNNING),
                fields={"pause_requested": True},
                events=(EventSpec(type=EventType.PAUSE_REQUESTED),),
                audit=self._audit(actor, "pause_requested"),
            )
            requested = (await self._change(job.record.id, change)).record
            if requested.state is S.RUNNING:
                job_id = requested.id
                await self._signal(lambda signals: signals.pause_requested(job_id))
            return requested
        else:
            change = JobChange(
                action="pause",
                from_states=states(S.CREATED),
                to_state=S.PAUSED,
                fields={"paused_at": NOW},
                events=(EventSpec(type=EventType.PAUSED, data={"reason": PauseReason.USER.value}),),
                audit=self._audit(actor, "pause"),
            )
        return (await self._change(job.record.id, change)).record

    async def resume(self, actor: Actor, job_id: str) -> JobRecord:
        """paused -> created: claimable again, checkpoint kept."""
        job = await self._visible(actor, job_id)
        change = JobChange(
            action="resume",
            from_states=states(S.PAUSED),
            to_state=S.CREATED,
            fields={"paused_at": None},
            events=(
                EventSpec(
                    type=EventType.RESUMED,
                    data=lambda changed: {"has_checkpoint": changed.checkpoint is not None},
                ),
            ),
            audit=self._audit(actor, "resume"),
        )
        resumed = (await self._change(job.record.id, change)).record
        await self._became_claimable(resumed)
        return resumed

    async def cancel(self, actor: Actor, job_id: str) -> JobRecord:
        job = await self._visible(actor, job_id)
        previous = str(job.record.state)
        change = JobChange(
            action="cancel",
            from_states=states(S.CREATED, S.RUNNING, S.PAUSED),
            to_state=S.CANCELLED,
            fields={"cancelled_at": NOW},
            events=(EventSpec(type=EventType.CANCELLED, data={"previous_state": previous}),),
            audit=self._audit(actor, "cancel", previous_state=previous),
        )
        cancelled = (await self._change(job.record.id, change)).record
        await self._revoked(job, cancelled, "cancelled")
        return cancelled

    async def delete_job(self, actor: Actor, job_id: str) -> StoredJob:
        """Delete a job in a final state with everything it has (owner or admin); it is
        ``not_found`` everywhere after. Other states: ``invalid_transition``."""
        job = await self._visible(actor, job_id)
        async with self._ordering.hold(job.record.id):
            return await self.store.delete(job.record.id)

    async def restart(self, actor: Actor, command: RestartJob) -> JobRecord:
        """failed/cancelled -> created: error, result and checkpoint cleared; optional new input."""
        job = await self._visible(actor, command.job_id)
        fields: dict[str, Any] = {
            "error": None,
            "result": None,
            "progress": 0.0,
            "step": None,
            "recovery_attempts": 0,
            "started_at": None,
            "paused_at": None,
            "completed_at": None,
            "failed_at": None,
            "cancelled_at": None,
            "last_heartbeat_at": None,
            "retries": 0,
            "run_at": None,
        }
        if command.input is not None:
            validation.bounded_size(command.input, "input", self.settings.max_input_bytes)
            fields["input"] = command.input
        change = JobChange(
            action="restart",
            from_states=states(S.FAILED, S.CANCELLED),
            to_state=S.CREATED,
            fields=fields,
            checkpoint=CLEAR_CHECKPOINT,
            events=(
                EventSpec(type=EventType.RESTARTED, data={"previous_state": str(job.record.state)}),
            ),
            audit=self._audit(actor, "restart", new_input=command.input is not None),
        )
        restarted = (await self._change(job.record.id, change)).record
        await self._became_claimable(restarted)
        return restarted


__all__ = ["UserCommands"]
