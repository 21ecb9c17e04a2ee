"""In-memory job store: a real product for single-process deployments.

It never awaits between reading and writing a job, so every method is atomic under asyncio
without locks, and it applies :mod:`server.store.rules` exactly as the Postgres store does.
"""

from __future__ import annotations

import collections
import copy
import functools
import operator
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import attrs

from jobspine_shared.models import JobEvent, JobRecord
from jobspine_shared.states import JobState
from server.errors import InvalidTransition, NotFound
from server.store.base import JobStore, NewJob
from server.store.claiming import claim_change
from server.store.heartbeat import heartbeat_fence
from server.store.memory_claims import ClaimIndex
from server.store.memory_copies import event_data, owning_values
from server.store.model import (
    AuditEntry,
    AuditPage,
    ChangeResult,
    Checkpoint,
    CheckpointWrite,
    ClaimResult,
    Page,
    StoredJob,
    StreamBatch,
    StreamRead,
)
from server.store.rules import (
    DELETABLE_STATES,
    apply_in_memory,
    change_events,
    claimable,
    finished_at,
    refusal,
)

if TYPE_CHECKING:  # names only the signatures use
    from server.store.model import EventSpec, JobChange, JobFilter, PageCursor

Clock = Callable[[], datetime]


#: Fences of the leases heartbeating most recently that the memory store keeps built.
HEARTBEAT_FENCES = 4096


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
        #: ``(user_id, idempotency key) -> (job id, when the key was taken)``.
        self._idempotency: dict[tuple[str, str], tuple[str, datetime]] = {}
        self._claims = ClaimIndex()
        #: The fence of each running lease, built once (a heartbeat is the hottest call).
        self._heartbeat_fence = functools.lru_cache(maxsize=HEARTBEAT_FENCES)(heartbeat_fence)

    def _now(self) -> datetime:
        return self._clock()

    def _append(
        self, slot: _Slot, specs: tuple[EventSpec, ...], now: datetime
    ) -> tuple[JobEvent, ...]:
        events = change_events(slot.job, specs, now, event_data)
        slot.events.extend(events)
        return events

    def _taken_key(self, job: NewJob, ttl_s: float, now: datetime) -> _Slot | None:
        """The job that holds ``job``'s idempotency key, while the key is live."""
        if job.spec.idempotency_key is None:
            return None
        taken = self._idempotency.get((job.user_id, job.spec.idempotency_key))
        if taken is None or taken[1] <= now - timedelta(seconds=ttl_s):
            return None
        return self._slots.get(taken[0])

    async def _insert(
        self, job: NewJob, event: EventSpec, idempotency_ttl_s: float
    ) -> ChangeResult:
        now = self._now()
        holder = self._taken_key(job, idempotency_ttl_s, now)
        if holder is not None:
            return ChangeResult(job=holder.job, events=(), existing=True)
        if job.spec.idempotency_key is not None:
            self._idempotency[(job.user_id, job.spec.idempotency_key)] = (job.id, now)
        record = job.record(now)
        slot = _Slot(
            job=StoredJob(record=record), events=collections.deque(maxlen=self.backlog_size)
        )
        self._slots[job.id] = slot
        self._claims.changed(None, record)
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
        before = slot.job.record
        slot.job = apply_in_memory(slot.job, owning_values(change), now)
        self._claims.changed(before, slot.job.record)
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
        self, types: tuple[str, ...], worker_id: str, lease: str, max_running_per_user: int
    ) -> ClaimResult | None:
        now = self._now()
        capped = self._claims.users_at(max_running_per_user)
        for job_id in self._claims.created_in_claim_order():
            slot = self._slots[job_id]
            record = slot.job.record
            if (
                claimable(record, now)
                and (not types or record.type in types)
                and record.user_id not in capped
            ):
                break
        else:
            return None
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
        now = self._now()
        error = refusal(job, self._heartbeat_fence(lease), now)
        if error is not None:
            raise error
        slot.heartbeat(now)
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

    async def list_jobs(
        self, where: JobFilter, *, owner: str | None, limit: int, after: PageCursor | None
    ) -> Page:
        def matches(record: JobRecord) -> bool:
            return (
                owner in (None, record.user_id)
                and where.matches(record)
                and (after is None or (record.created_at, record.id) < (after.created_at, after.id))
            )

        records = sorted(
            (s.job.record for s in self._slots.values() if matches(s.job.record)),
            key=lambda r: (r.created_at, r.id),
            reverse=True,
        )
        return Page.first(records, limit)

    async def read_streams(
        self, requests: Mapping[str, int], *, owner: str | None, max_bytes: int
    ) -> StreamBatch:
        # Nothing is materialised here (the reads share the store's objects): no byte budget.
        reads = {}
        for job_id, after_seq in requests.items():
            slot = self._slots.get(job_id)
            if slot is not None and owner in (None, slot.job.record.user_id):
                events = tuple(e for e in slot.events if e.seq > after_seq)
                reads[job_id] = StreamRead(job=slot.job, events=events)
        return StreamBatch(reads=reads)

    async def list_audit(self, job_id: str, *, limit: int, after: int = 0) -> AuditPage:
        # An entry's position is its place in the job's trail, from 1 (entries only append).
        slot = self._slots.get(job_id)
        trail = slot.audit if slot else []
        page = tuple(trail[after : after + limit])
        more = after + limit < len(trail)
        return AuditPage(entries=page, next_after=after + limit if more else None)

    async def count_by_state(self, user_id: str | None) -> dict[JobState, int]:
        counts = dict.fromkeys(JobState, 0)
        for slot in self._slots.values():
            if user_id is None or slot.job.record.user_id == user_id:
                counts[slot.job.record.state] += 1
        return counts

    async def count_by_state_and_type(self) -> dict[tuple[JobState, str], int]:
        counts: dict[tuple[JobState, str], int] = {}
        for slot in self._slots.values():
            key = (slot.job.record.state, slot.job.record.type)
            counts[key] = counts.get(key, 0) + 1
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

    async def due_types(self, within_s: float) -> list[str]:
        now = self._now()
        since = now - timedelta(seconds=within_s)
        return sorted(
            {
                slot.job.record.type
                for slot in self._slots.values()
                if slot.job.record.state is JobState.CREATED
                and slot.job.record.run_at is not None
                and since < slot.job.record.run_at <= now
            }
        )

    async def find_timed_out(self, *, limit: int) -> list[StoredJob]:
        now = self._now()
        overdue: list[tuple[datetime, StoredJob]] = []
        for slot in self._slots.values():
            record = slot.job.record
            if record.state is not JobState.RUNNING or record.timeout_s is None:
                continue
            assert record.started_at is not None
            deadline = record.started_at + timedelta(seconds=record.timeout_s)
            if deadline < now:
                overdue.append((deadline, slot.job))
        overdue.sort(key=lambda item: (item[0], item[1].record.id))
        return [job for _, job in overdue[:limit]]

    def _drop(self, job_id: str) -> StoredJob:
        slot = self._slots.pop(job_id)
        self._claims.changed(slot.job.record, None)
        key = slot.job.record.idempotency_key
        if key is not None:
            taken = self._idempotency.get((slot.job.record.user_id, key))
            if taken is not None and taken[0] == job_id:
                del self._idempotency[(slot.job.record.user_id, key)]
        return slot.job

    async def delete(self, job_id: str) -> StoredJob:
        slot = self._slots.get(job_id)
        if slot is None:
            raise NotFound()
        state = slot.job.record.state
        if state not in DELETABLE_STATES:
            raise InvalidTransition(
                f"cannot delete a job that is {state}",
                details={"state": str(state), "action": "delete"},
            )
        return self._drop(job_id)

    async def delete_finished(self, older_than_s: float, *, limit: int) -> list[StoredJob]:
        cutoff = self._now() - timedelta(seconds=older_than_s)
        finished: list[tuple[datetime, str]] = []
        for job_id, slot in self._slots.items():
            at = finished_at(slot.job.record)
            if at is not None and at < cutoff:
                finished.append((at, job_id))
        finished.sort()
        return [self._drop(job_id) for _, job_id in finished[:limit]]

    async def ping(self) -> None:
        return None
