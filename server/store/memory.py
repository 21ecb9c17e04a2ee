"""In-memory job store: a real product for single-process deployments.

It never awaits between reading and writing a job, so every method is atomic under asyncio
without locks, and it applies :mod:`server.store.rules` exactly as the Postgres store does.
"""

from __future__ import annotations

import collections
import copy
import operator
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import attrs

from jobspine_shared.models import JobEvent, JobRecord
from jobspine_shared.states import JobState
from server.errors import LeaseLost, NotFound
from server.store.base import JobStore, NewJob
from server.store.claiming import claim_change
from server.store.model import (
    AuditEntry,
    ChangeResult,
    Checkpoint,
    CheckpointWrite,
    ClaimResult,
    EventSpec,
    JobChange,
    JobFilter,
    Page,
    PageCursor,
    StoredJob,
    StreamRead,
)
from server.store.rules import apply_in_memory, refusal

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


_RECORD_FIELDS = tuple(field.name for field in attrs.fields(JobRecord))
_record_values = operator.attrgetter(*_RECORD_FIELDS)
_STORED_FIELDS = tuple(field.name for field in attrs.fields(StoredJob))
_stored_values = operator.attrgetter(*_STORED_FIELDS)


def _with_heartbeat(job: StoredJob, at: datetime) -> StoredJob:
    """``job`` with its ``last_heartbeat_at`` set to ``at``.

    What ``attrs.evolve`` gives, without its per-call field introspection: heartbeats are
    the hottest write of a running system (docs/performance.md measures the difference).
    """
    record = dict(zip(_RECORD_FIELDS, _record_values(job.record), strict=True))
    record["last_heartbeat_at"] = at
    stored = dict(zip(_STORED_FIELDS, _stored_values(job), strict=True))
    stored["record"] = JobRecord(**record)
    return StoredJob(**stored)


@attrs.define
class _Slot:
    """One job, its retained events, checkpoint data and audit trail.

    A heartbeat only notes its time (:meth:`heartbeat`); the job is rebuilt with it when
    ``job`` is next read. Heartbeats are the hottest write, and most are never read before
    the next one (docs/performance.md).
    """

    _job: StoredJob = attrs.field(alias="job")
    events: collections.deque[JobEvent]
    checkpoint_data: dict[str, Any] | None = None
    audit: list[AuditEntry] = attrs.field(factory=list)
    _heartbeat_at: datetime | None = attrs.field(default=None, init=False)

    @property
    def job(self) -> StoredJob:
        if self._heartbeat_at is not None:
            self._job = _with_heartbeat(self._job, self._heartbeat_at)
            self._heartbeat_at = None
        return self._job

    @job.setter
    def job(self, job: StoredJob) -> None:
        self._job = job
        self._heartbeat_at = None

    @property
    def job_before_heartbeat(self) -> StoredJob:
        """The job without a heartbeat noted since it was last read: exact in every field
        but ``last_heartbeat_at``, which is all a heartbeat changes."""
        return self._job

    def heartbeat(self, at: datetime) -> None:
        self._heartbeat_at = at


class MemoryJobStore(JobStore):
    def __init__(self, *, backlog_size: int, clock: Clock = utc_now) -> None:
        super().__init__(backlog_size=backlog_size)
        self._clock = clock
        self._slots: dict[str, _Slot] = {}

    def _now(self) -> datetime:
        return self._clock()

    def _append(
        self, slot: _Slot, specs: tuple[EventSpec, ...], now: datetime
    ) -> tuple[JobEvent, ...]:
        record = slot.job.record
        first = record.seq - len(specs) + 1
        events = tuple(
            JobEvent(
                job_id=record.id,
                user_id=record.user_id,
                seq=first + i,
                epoch=record.epoch,
                type=spec.type,
                at=now,
                data=copy.deepcopy(spec.render(slot.job)),
            )
            for i, spec in enumerate(specs)
        )
        slot.events.extend(events)
        return events

    async def _insert(self, job: NewJob, event: EventSpec) -> ChangeResult:
        now = self._now()
        record = JobRecord(
            id=job.id,
            user_id=job.user_id,
            type=job.type,
            input=copy.deepcopy(job.input),
            created_at=now,
            updated_at=now,
            epoch=job.epoch,
            seq=1,
        )
        slot = _Slot(
            job=StoredJob(record=record), events=collections.deque(maxlen=self.backlog_size)
        )
        self._slots[job.id] = slot
        return ChangeResult(job=slot.job, events=self._append(slot, (event,), now))

    async def _apply(self, job_id: str, change: JobChange) -> ChangeResult:
        now = self._now()
        slot = self._slots.get(job_id)
        error = refusal(slot.job if slot else None, change, now)
        if error is not None:
            raise error
        assert slot is not None
        return self._commit(slot, change, now)

    def _commit(self, slot: _Slot, change: JobChange, now: datetime) -> ChangeResult:
        slot.job = apply_in_memory(slot.job, change, now)
        if isinstance(change.checkpoint, CheckpointWrite):
            slot.checkpoint_data = copy.deepcopy(change.checkpoint.data)
        elif slot.job.checkpoint is None:
            slot.checkpoint_data = None
        if change.audit is not None:
            slot.audit.append(
                AuditEntry(
                    action=change.audit.action,
                    actor=change.audit.actor,
                    at=now,
                    details=dict(change.audit.details),
                )
            )
        return ChangeResult(job=slot.job, events=self._append(slot, change.events, now))

    async def _claim(
        self, types: tuple[str, ...], worker_id: str, lease: str
    ) -> ClaimResult | None:
        candidates = [
            slot
            for slot in self._slots.values()
            if slot.job.record.state is JobState.CREATED
            and (not types or slot.job.record.type in types)
        ]
        if not candidates:
            return None
        slot = min(candidates, key=lambda s: (s.job.record.created_at, s.job.record.id))
        now = self._now()
        result = self._commit(slot, claim_change(slot.job, worker_id=worker_id, lease=lease), now)
        return ClaimResult(
            job=result.job.record,
            lease=lease,
            checkpoint=copy.deepcopy(slot.checkpoint_data),
            events=result.events,
        )

    async def heartbeat(self, job_id: str, lease: str) -> bool:
        slot = self._slots.get(job_id)
        if slot is None:
            raise NotFound()
        job = slot.job_before_heartbeat
        if job.record.state is not JobState.RUNNING or job.lease != lease:
            raise LeaseLost(details={"state": str(job.record.state), "job_id": job_id})
        slot.heartbeat(self._now())
        return job.record.pause_requested

    async def get(self, job_id: str) -> StoredJob | None:
        slot = self._slots.get(job_id)
        return slot.job if slot else None

    async def read_stream(self, job_id: str, after_seq: int) -> StreamRead | None:
        slot = self._slots.get(job_id)
        if slot is None:
            return None
        return StreamRead(job=slot.job, events=tuple(e for e in slot.events if e.seq > after_seq))

    async def get_checkpoint(self, job_id: str) -> Checkpoint | None:
        slot = self._slots.get(job_id)
        if slot is None or slot.job.checkpoint is None or slot.checkpoint_data is None:
            return None
        return Checkpoint(info=slot.job.checkpoint, data=copy.deepcopy(slot.checkpoint_data))

    async def list_jobs(self, where: JobFilter, *, limit: int, after: PageCursor | None) -> Page:
        def matches(record: JobRecord) -> bool:
            return (
                (where.user_id is None or record.user_id == where.user_id)
                and (where.state is None or record.state is where.state)
                and (where.type is None or record.type == where.type)
                and (after is None or (record.created_at, record.id) < (after.created_at, after.id))
            )

        records = sorted(
            (s.job.record for s in self._slots.values() if matches(s.job.record)),
            key=lambda r: (r.created_at, r.id),
            reverse=True,
        )
        page = records[:limit]
        more = len(records) > limit
        cursor = PageCursor(created_at=page[-1].created_at, id=page[-1].id) if more else None
        return Page(items=tuple(page), next_cursor=cursor)

    async def list_audit(self, job_id: str) -> list[AuditEntry]:
        slot = self._slots.get(job_id)
        return list(slot.audit) if slot else []

    async def count_by_state(self, user_id: str | None) -> dict[JobState, int]:
        counts = dict.fromkeys(JobState, 0)
        for slot in self._slots.values():
            if user_id is None or slot.job.record.user_id == user_id:
                counts[slot.job.record.state] += 1
        return counts

    async def find_stale(self, stale_after_s: float, *, limit: int) -> list[StoredJob]:
        now = self._now()
        stale = [
            slot.job
            for slot in self._slots.values()
            if slot.job.record.state is JobState.RUNNING
            and slot.job.record.last_heartbeat_at is not None
            and (now - slot.job.record.last_heartbeat_at).total_seconds() > stale_after_s
        ]
        stale.sort(key=lambda j: j.record.last_heartbeat_at or now)
        return stale[:limit]

    async def ping(self) -> None:
        return None
