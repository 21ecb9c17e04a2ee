"""What stores keep and return besides the public job record."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

import attrs

from jobspine_shared.events import EventType
from jobspine_shared.models import JobEvent, JobRecord
from jobspine_shared.states import JobState


class _Now:
    """Stands for "the store's clock at the moment of the change"."""

    def __repr__(self) -> str:
        return "NOW"


NOW: Final = _Now()


@attrs.frozen
class Later:
    """Stands for "the store's clock at the moment of the change, plus ``seconds``"."""

    seconds: float


@attrs.frozen(kw_only=True)
class CheckpointSummary:
    """What a checkpoint's data says of itself: its compact JSON size and top-level keys."""

    size_bytes: int
    keys: tuple[str, ...]


@attrs.frozen(kw_only=True)
class CheckpointInfo(CheckpointSummary):
    """Everything about a job's checkpoint but the data itself."""

    progress: float
    saved_at: datetime


@attrs.frozen(kw_only=True)
class Checkpoint:
    info: CheckpointInfo
    data: dict[str, Any]


@attrs.frozen(kw_only=True)
class CheckpointWrite(CheckpointSummary):
    """A checkpoint to store with a change; ``saved_at`` is the store's clock. ``progress``
    None: the job's progress as the change leaves it (read by the change itself, not before
    it)."""

    data: dict[str, Any]
    progress: float | None

    def saved(self, at: datetime, job_progress: float) -> CheckpointInfo:
        """What the store knows of this checkpoint once it saved it ``at``, when the job's
        progress was ``job_progress``."""
        return CheckpointInfo(
            saved_at=at,
            size_bytes=self.size_bytes,
            progress=job_progress if self.progress is None else self.progress,
            keys=self.keys,
        )


@attrs.frozen(kw_only=True)
class StoredJob:
    """A job as the store holds it: the public record plus lease bookkeeping."""

    record: JobRecord
    lease: str | None = None
    worker_id: str | None = None
    checkpoint: CheckpointInfo | None = None


@attrs.frozen(kw_only=True)
class AuditEntry:
    action: str
    actor: str
    at: datetime
    details: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class AuditPage:
    """Audit entries oldest first; ``next_after`` is the position to read on from when more
    remain (positions are the store's, increasing within a job)."""

    entries: tuple[AuditEntry, ...]
    next_after: int | None


@attrs.frozen(kw_only=True)
class AuditWrite:
    action: str
    actor: str
    details: dict[str, Any] = attrs.field(factory=dict)


def job_event(
    record: JobRecord, *, seq: int, type: EventType, at: datetime, data: dict[str, Any]
) -> JobEvent:
    """An event of ``record``'s stream: the job's id, owner and epoch, at ``seq``."""
    return JobEvent(
        job_id=record.id,
        user_id=record.user_id,
        seq=seq,
        epoch=record.epoch,
        type=type,
        at=at,
        data=data,
    )


EventData = Mapping[str, Any] | Callable[[StoredJob], Mapping[str, Any]]


@attrs.frozen(kw_only=True)
class EventSpec:
    """An event to append with a change; ``data`` may be computed from the changed job."""

    type: EventType
    data: EventData = attrs.field(factory=dict)

    def render(self, job: StoredJob) -> dict[str, Any]:
        data = self.data(job) if callable(self.data) else self.data
        return dict(data)


CLEAR_CHECKPOINT: Final = "clear"


#: Where a fenced change applies: a job running (under the change's lease).
RUNNING_ONLY: Final = frozenset({JobState.RUNNING})


def _fenced_states(lease: str | None) -> frozenset[JobState]:
    if lease is None:
        raise TypeError("a change without a lease names its from_states")
    return RUNNING_ONLY


@attrs.frozen(kw_only=True)
class JobChange:
    """One conditional, atomic change of a job: the unit both stores apply.

    The change applies only when every condition holds on the current job; it then sets the
    fields, writes or clears the checkpoint, appends the events (with consecutive seqs) and
    the audit entry, all in one atomic step. Otherwise nothing changes and the store raises
    the error :func:`server.store.rules.refusal` names.
    """

    action: str
    # -- when it applies
    #: Fenced: the job must be running under exactly this lease.
    lease: str | None = None
    #: The states it applies in; a fenced change's, unless it names them, are ``running``.
    from_states: frozenset[JobState] = attrs.field(
        default=attrs.Factory(lambda change: _fenced_states(change.lease), takes_self=True)
    )
    require_pause_requested: bool = False
    #: Progress may not go down: the current progress must be at most this.
    progress_at_most: float | None = None
    #: Supervisor: the last heartbeat must be older than this many seconds.
    stale_after_s: float | None = None
    # -- what it does, when they hold
    to_state: JobState | None = None
    #: Set the lease (a claim); leaving ``running`` always clears it.
    new_lease: str | None = None
    worker_id: str | None = None
    #: Record fields to set (``NOW`` for the store's clock).
    fields: Mapping[str, Any] = attrs.field(factory=dict)
    #: Record fields to increase by the given amount.
    increments: Mapping[str, int] = attrs.field(factory=dict)
    checkpoint: CheckpointWrite | str | None = None
    events: tuple[EventSpec, ...] = ()
    audit: AuditWrite | None = None


@attrs.frozen(kw_only=True)
class ChangeResult:
    job: StoredJob
    events: tuple[JobEvent, ...]
    #: A create that found its idempotency key taken: ``job`` is the earlier job, unchanged.
    existing: bool = False


@attrs.frozen(kw_only=True)
class ClaimResult:
    job: JobRecord
    lease: str
    checkpoint: dict[str, Any] | None
    events: tuple[JobEvent, ...]


@attrs.frozen(kw_only=True)
class StreamRead:
    """A job and the events its store still holds after some seq, read consistently."""

    job: StoredJob
    events: tuple[JobEvent, ...]


@attrs.frozen(kw_only=True)
class StreamBatch:
    """Many jobs' streams read at once (``job:sync``): the jobs found, by id, and the ids
    asked for that the read left out because the ones before filled its byte budget."""

    reads: dict[str, StreamRead]
    unread: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class JobFilter:
    """What a listing picks among the jobs it may see (whose jobs those are is the
    ``owner`` the service passes along, as for :meth:`~server.store.base.JobStore.read_streams`)."""

    state: JobState | None = None
    type: str | None = None
    tag: str | None = None
    parent_id: str | None = None
    priority: int | None = None

    def matches(self, record: JobRecord) -> bool:
        """The filter as a predicate: the memory store's listing (Postgres says it in SQL)."""
        return (
            (self.state is None or record.state is self.state)
            and (self.type is None or record.type == self.type)
            and (self.tag is None or self.tag in record.tags)
            and (self.parent_id is None or record.parent_id == self.parent_id)
            and (self.priority is None or record.priority == self.priority)
        )


@attrs.frozen(kw_only=True)
class PageCursor:
    """Position after the last item of a page: newest first by ``(created_at, id)``."""

    created_at: datetime
    id: str

    @classmethod
    def after(cls, record: JobRecord) -> PageCursor:
        return cls(created_at=record.created_at, id=record.id)


@attrs.frozen(kw_only=True)
class Page:
    items: tuple[JobRecord, ...]
    #: Where the next page starts (encoded for the wire by :mod:`server.rendering`).
    next_cursor: PageCursor | None

    @classmethod
    def first(cls, records: Sequence[JobRecord], limit: int) -> Page:
        """The first ``limit`` of ``records`` (newest first, read up to one beyond a page:
        that one says whether a next page exists)."""
        items = tuple(records[:limit])
        cursor = PageCursor.after(items[-1]) if len(records) > limit else None
        return cls(items=items, next_cursor=cursor)
