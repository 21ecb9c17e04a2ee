"""Reads: a job, a page of jobs, a replay or subscription, many replays (sync), recovery
options, a checkpoint, the audit trail and the counts by state."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import attrs

from jobspine_shared import checks
from jobspine_shared.models import JobRecord
from jobspine_shared.states import JobState
from jobspine_shared.wire import event_to_wire, job_to_wire
from server import validation
from server.actors import Actor
from server.errors import NotFound, ValidationFailed
from server.limits.reply_budget import TRUNCATED_SLOT, ReplyBudget
from server.service.answers import JobPage, Replay
from server.service.core import CommitCore
from server.service.cursors import decode_cursor, encode_cursor
from server.store.model import AuditEntry, Checkpoint, JobFilter

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
MAX_SYNC_JOBS = 500


def _v2_filters(*, tag: object, parent_id: object, priority: object) -> JobFilter:
    """The list filters of contract v2, checked by the shared rules."""
    try:
        return JobFilter(
            tag=None if tag is None else checks.tag(tag),
            parent_id=None if parent_id is None else validation.job_id(parent_id, "parent_id"),
            priority=None if priority is None else checks.priority(priority),
        )
    except checks.ValueCheckError as exc:
        raise validation.invalid(exc.field, exc.message) from None


def replay_to_wire(replay: Replay) -> dict[str, Any]:
    return {
        "recovered": replay.recovered,
        "events": [event_to_wire(e) for e in replay.events],
        "job": job_to_wire(replay.job),
    }


class Reads(CommitCore):
    async def get_job(self, actor: Actor, job_id: object) -> JobRecord:
        return (await self._visible(actor, job_id)).record

    async def list_jobs(
        self,
        actor: Actor,
        *,
        state: object = None,
        type: object = None,
        user_id: object = None,
        limit: object = None,
        cursor: object = None,
        tag: object = None,
        parent_id: object = None,
        priority: object = None,
    ) -> JobPage:
        v2 = _v2_filters(tag=tag, parent_id=parent_id, priority=priority)
        wanted_state = None
        if state is not None:
            if not isinstance(state, str) or state not in set(JobState):
                raise validation.invalid("state", "is not a job state")
            wanted_state = JobState(state)
        wanted_type = None if type is None else validation.job_type(type)
        if user_id is not None and not isinstance(user_id, str):
            raise validation.invalid("user_id", "must be a string")
        if user_id is not None:
            validation.storable_text(user_id, "user_id")
        owner = (user_id or None) if actor.is_admin else actor.id
        if limit is None:
            limit = DEFAULT_PAGE_SIZE
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE_SIZE:
            raise validation.invalid("limit", f"must be an integer from 1 to {MAX_PAGE_SIZE}")
        after = None
        if cursor is not None:
            if not isinstance(cursor, str):
                raise validation.invalid("cursor", "must be a string")
            after = decode_cursor(cursor)
        page = await self.store.list_jobs(
            attrs.evolve(v2, user_id=owner, state=wanted_state, type=wanted_type),
            limit=limit,
            after=after,
        )
        next_cursor = encode_cursor(page.next_cursor) if page.next_cursor else None
        return JobPage(items=page.items, next_cursor=next_cursor)

    async def replay(
        self, actor: Actor, job_id: object, *, after_seq: object = None, epoch: object = None
    ) -> Replay:
        """Events after ``after_seq`` when the backlog still covers them, else the snapshot."""
        cursor = validation.after_seq(after_seq)
        if epoch is not None and not isinstance(epoch, str):
            raise validation.invalid("epoch", "must be a string")
        checked = validation.job_id(job_id)
        if not actor.is_admin:
            await self._visible(actor, checked)  # authorised before the backlog is read
        read = await self.store.read_stream(checked, cursor if cursor is not None else 2**62)
        if read is None or not actor.may_see(read.job.record.user_id):
            raise NotFound()
        job = read.job.record
        if cursor is None or (epoch is not None and epoch != job.epoch) or cursor > job.seq:
            return Replay(job=job, events=(), recovered=False)
        missed = job.seq - cursor
        contiguous = len(read.events) >= missed and all(
            event.seq == cursor + 1 + i for i, event in enumerate(read.events[:missed])
        )
        if missed > self.store.backlog_size or not contiguous:
            return Replay(job=job, events=(), recovered=False)
        return Replay(job=job, events=read.events[:missed], recovered=True)

    async def subscribe(
        self,
        actor: Actor,
        job_id: object,
        *,
        join: Callable[[str], Awaitable[None]],
        after_seq: object = None,
        epoch: object = None,
    ) -> Replay:
        """A replay that starts live delivery: ``join(job_id)`` runs once the arguments are
        valid and ``actor`` may see the job, and before the backlog is read, so no event
        falls between the replay and the live stream and no one else's event leaks."""
        validation.after_seq(after_seq)
        if epoch is not None and not isinstance(epoch, str):
            raise validation.invalid("epoch", "must be a string")
        job = await self._visible(actor, job_id)
        await join(job.record.id)
        return await self.replay(actor, job.record.id, after_seq=after_seq, epoch=epoch)

    async def sync(
        self, actor: Actor, cursors: object, epochs: object = None
    ) -> dict[str, dict[str, Any]]:
        """Replay many jobs in one call; each slot is a replay or a ``not_found`` error."""
        if not isinstance(cursors, dict):
            raise validation.invalid("cursors", "must be an object of job_id: after_seq")
        if len(cursors) > MAX_SYNC_JOBS:
            raise validation.invalid("cursors", f"at most {MAX_SYNC_JOBS} jobs per call")
        for key, value in cursors.items():
            validation.after_seq(value, f"cursors.{key}")
        if epochs is not None and (
            not isinstance(epochs, dict) or not all(isinstance(v, str) for v in epochs.values())
        ):
            raise validation.invalid("epochs", "must be an object of job_id: epoch")
        epochs = epochs or {}
        results: dict[str, dict[str, Any]] = {}
        budget = ReplyBudget()  # bounded replies; the rest is marked for another call
        for key, value in cursors.items():
            if budget.spent:
                results[key] = dict(TRUNCATED_SLOT)
                continue
            try:
                replay = await self.replay(actor, key, after_seq=value, epoch=epochs.get(key))
            except (NotFound, ValidationFailed):
                results[key] = {"error": NotFound().to_wire()}
            else:
                slot = replay_to_wire(replay)
                results[key] = slot if budget.fits(slot) else dict(TRUNCATED_SLOT)
        return results

    async def recovery_options(self, actor: Actor, job_id: object) -> dict[str, Any]:
        return self._options(await self._visible(actor, job_id))

    async def get_checkpoint(self, actor: Actor, job_id: object) -> Checkpoint:
        job = await self._visible(actor, job_id)
        checkpoint = await self.store.get_checkpoint(job.record.id)
        if checkpoint is None:
            raise NotFound("this job has no checkpoint")
        return checkpoint

    async def audit_trail(self, actor: Actor, job_id: object) -> list[AuditEntry]:
        job = await self._visible(actor, job_id)
        return await self.store.list_audit(job.record.id)

    async def get_stats(self, actor: Actor) -> dict[str, Any]:
        counts = await self.store.count_by_state(None if actor.is_admin else actor.id)
        by_state = {str(state): counts.get(state, 0) for state in JobState}
        return {"by_state": by_state, "total": sum(by_state.values())}


__all__ = ["DEFAULT_PAGE_SIZE", "MAX_PAGE_SIZE", "MAX_SYNC_JOBS", "Reads", "replay_to_wire"]
