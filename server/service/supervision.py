"""Supervision and recovery: the supervisor's stale and timed-out jobs, due delayed jobs,
the retention sweep, and an admin's recovery check of one job."""

from __future__ import annotations

from jobspine_shared.events import EventType, PauseReason
from jobspine_shared.logcontext import own_context
from jobspine_shared.models import JobRecord
from jobspine_shared.states import JobState
from server.actors import SUPERVISOR_ACTOR, Actor, require_admin
from server.errors import InvalidTransition, LeaseLost, NotFound
from server.recovery import recovery_options_to_wire
from server.retry import timeout_error
from server.service.answers import RecoveryCheck
from server.service.core import CommitCore
from server.store.model import NOW, EventSpec, JobChange, StoredJob

S = JobState


class Supervision(CommitCore):
    async def find_stale_jobs(self, *, limit: int = 1000) -> list[StoredJob]:
        return await self.store.find_stale(self.settings.heartbeat_timeout_s, limit=limit)

    @own_context
    async def recover_stale_job(self, job: StoredJob) -> JobRecord | None:
        """Pause (checkpoint and attempts left) or fail a stale job, once.

        The change is conditional on the job still running under the same lease and still
        being stale, so a heartbeat that lands first wins and concurrent supervisors recover
        a job once. Returns None when there was nothing (any more) to recover.
        """
        record, lease = job.record, job.lease
        if record.state is not S.RUNNING or lease is None:
            return None
        timeout = self.settings.heartbeat_timeout_s
        try:
            if job.checkpoint is not None and (
                record.recovery_attempts < self.settings.max_recovery_attempts
            ):
                change = JobChange(
                    action="recover",
                    to_state=S.PAUSED,
                    lease=lease,
                    stale_after_s=timeout,
                    fields={"paused_at": NOW},
                    increments={"recovery_attempts": 1},
                    events=(
                        EventSpec(
                            type=EventType.PAUSED, data={"reason": PauseReason.STALLED.value}
                        ),
                        EventSpec(
                            type=EventType.RECOVERY,
                            data=lambda paused: recovery_options_to_wire(self._options(paused)),
                        ),
                    ),
                    audit=self._audit(SUPERVISOR_ACTOR, "recover", outcome="paused"),
                )
                paused = (await self._change(record.id, change)).record
                await self._revoked(job, paused, "stalled")
                return paused
            code = "worker_lost" if job.checkpoint is None else "max_recovery_attempts"
            message = (
                "the worker stopped sending heartbeats and the job has no checkpoint"
                if job.checkpoint is None
                else "the job stalled again after its last allowed recovery"
            )
            error = {"code": code, "message": message, "retryable": True}
            return await self._fail(
                record.id,
                error,
                lease=lease,
                stale_after_s=timeout,
                actor=SUPERVISOR_ACTOR,
                reason="stalled",
            )
        except (LeaseLost, InvalidTransition, NotFound):
            return None

    async def find_timed_out_jobs(self, *, limit: int = 1000) -> list[StoredJob]:
        return await self.store.find_timed_out(limit=limit)

    @own_context
    async def time_out_job(self, job: StoredJob) -> JobRecord | None:
        """Fail (or retry) an attempt past its ``timeout_s`` with ``{code: timeout,
        retryable: true}``, once: fenced by the lease it was found under, whose claim set
        the ``started_at`` the timeout counts from. None when it has moved on."""
        if job.record.state is not S.RUNNING or job.lease is None:
            return None
        try:
            return await self._fail(
                job.record.id,
                timeout_error(job.record),
                lease=job.lease,
                actor=SUPERVISOR_ACTOR,
                reason="timeout",
            )
        except (LeaseLost, InvalidTransition, NotFound):
            return None

    async def announce_due_jobs(self, *, within_s: float) -> list[str]:
        """Wake idle workers for delayed jobs whose ``run_at`` passed in the last
        ``within_s`` seconds (the supervisor's tick); returns their types."""
        types = await self.store.due_types(within_s)
        if types:
            await self._signal(lambda signals: signals.jobs_available(types))
        return types

    async def sweep_finished(self, *, older_than_s: float, limit: int) -> list[StoredJob]:
        """Retention: delete one batch of jobs final for longer than ``older_than_s``."""
        return await self.store.delete_finished(older_than_s, limit=limit)

    async def check_job(self, actor: Actor, job_id: str) -> RecoveryCheck:
        """An admin's recovery check of one job: recover it now when it is stale.

        ``recovered`` says whether this check paused or failed the job; the staleness
        condition is checked by the store in the same change, as for the supervisor.
        """
        require_admin(actor, "trigger a recovery check")
        job = await self._visible(actor, job_id)
        recovered = await self.recover_stale_job(job)
        if recovered is None:
            return RecoveryCheck(recovered=False, job=job.record)
        return RecoveryCheck(recovered=True, job=recovered)


__all__ = ["Supervision"]
