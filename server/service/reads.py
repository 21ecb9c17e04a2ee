"""Reads: a job, a page of jobs, a replay or subscription, the slots of a sync, recovery
options, a checkpoint, the audit trail and the counts by state."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from jobspine_shared.models import JobRecord
from server import validation
from server.actors import Actor
from server.commands.user import ListJobs, ReadAudit, ReadStream, SyncJobs
from server.errors import NotFound
from server.recovery import RecoveryOptions
from server.service.answers import JobCounts, Replay, SyncSlots
from server.service.core import CommitCore
from server.store.model import AuditPage, Checkpoint, Page, StreamRead

#: ``after_seq`` beyond any job's seq: read the snapshot only.
_NO_EVENTS = 2**62


def _after(cursor: int | None) -> int:
    """The seq to read events after: none without a cursor (the snapshot only)."""
    return cursor if cursor is not None else _NO_EVENTS


class Reads(CommitCore):
    async def get_job(self, actor: Actor, job_id: str) -> JobRecord:
        return (await self._visible(actor, job_id)).record

    async def list_jobs(self, actor: Actor, query: ListJobs | None = None) -> Page:
        """A page of jobs: the actor's own, or (admins) everyone's or ``query.user_id``'s."""
        query = query or ListJobs()
        owner = (query.user_id or None) if actor.is_admin else actor.id
        return await self.store.list_jobs(
            query.where, owner=owner, limit=query.limit, after=query.after
        )

    async def replay(self, actor: Actor, read: ReadStream) -> Replay:
        """Events after ``after_seq`` when the backlog still covers them, else the snapshot."""
        cursor, epoch = read.after_seq, read.epoch
        if not actor.is_admin:
            await self._visible(actor, read.job_id)  # authorised before the backlog is read
        stream = await self.store.read_stream(read.job_id, _after(cursor))
        if stream is None or not actor.may_see(stream.job.record.user_id):
            raise NotFound()
        return self._replay_of(stream, cursor, epoch)

    def _replay_of(self, stream: StreamRead, cursor: int | None, epoch: str | None) -> Replay:
        """The events after ``cursor`` when the read covers them all, else the snapshot."""
        job = stream.job.record
        if cursor is None or (epoch is not None and epoch != job.epoch) or cursor > job.seq:
            return Replay(job=job, events=(), recovered=False)
        missed = job.seq - cursor
        contiguous = len(stream.events) >= missed and all(
            event.seq == cursor + 1 + i for i, event in enumerate(stream.events[:missed])
        )
        if missed > self.store.backlog_size or not contiguous:
            return Replay(job=job, events=(), recovered=False)
        return Replay(job=job, events=stream.events[:missed], recovered=True)

    async def subscribe(
        self, actor: Actor, read: ReadStream, *, join: Callable[[str], Awaitable[None]]
    ) -> Replay:
        """A replay that starts live delivery: ``join(job_id)`` runs once ``actor`` may see
        the job, and before the backlog is read, so no event falls between the replay and the
        live stream and no one else's event leaks."""
        job = await self._visible(actor, read.job_id)
        await join(job.record.id)
        return await self.replay(actor, read)

    async def replay_slots(self, actor: Actor, command: SyncJobs, *, max_bytes: int) -> SyncSlots:
        """Every job of a ``job:sync`` in one store read, and only the ones ``actor`` may
        see (the read is authorised: another user's job is not read at all). A key that
        names no such job (a malformed id included) has no replay: a slot, not a refusal."""
        wanted = {
            job_id: _after(after_seq)
            for job_id, after_seq in command.cursors.items()
            if validation.is_job_id(job_id)
        }
        batch = await self.store.read_streams(
            wanted, owner=None if actor.is_admin else actor.id, max_bytes=max_bytes
        )
        replays = {
            job_id: self._replay_of(stream, command.cursors[job_id], command.epochs.get(job_id))
            for job_id, stream in batch.reads.items()
        }
        return SyncSlots(replays=replays, unread=frozenset(batch.unread))

    async def recovery_options(self, actor: Actor, job_id: str) -> RecoveryOptions:
        return self._options(await self._visible(actor, job_id))

    async def get_checkpoint(self, actor: Actor, job_id: str) -> Checkpoint:
        job = await self._visible(actor, job_id)
        checkpoint = await self.store.get_checkpoint(job.record.id)
        if checkpoint is None:
            raise NotFound("this job has no checkpoint")
        return checkpoint

    async def audit_trail(self, actor: Actor, read: ReadAudit) -> AuditPage:
        """A page of the job's audit trail, oldest first."""
        job = await self._visible(actor, read.job_id)
        return await self.store.list_audit(job.record.id, limit=read.limit, after=read.after)

    async def get_stats(self, actor: Actor) -> JobCounts:
        counts = await self.store.count_by_state(None if actor.is_admin else actor.id)
        return JobCounts(by_state=dict(counts))


__all__ = ["Reads"]
