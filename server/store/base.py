"""The JobStore interface: public methods do the bookkeeping, abstract ones the storage."""

from __future__ import annotations

import abc
import copy
from collections.abc import Mapping, Sequence
from datetime import datetime

import attrs

from jobspine_shared.models import JobRecord, JobSpec
from jobspine_shared.states import JobState
from server.store import model
from server.store.progress import ProgressResult, ProgressWrite, progress_change
from server.store.rules import ACTIVE_STATES, check_change


@attrs.frozen(kw_only=True)
class NewJob:
    """A job to insert: its spec, and what the service gave it (id, owner, first epoch)."""

    id: str
    user_id: str
    epoch: str
    spec: JobSpec

    def record(self, at: datetime) -> JobRecord:
        """The job as a store inserts it ``at`` (the store's clock): ``created``, at seq 1
        (its ``job:created`` event), holding a copy of the spec's input."""
        own = {"id": self.id, "user_id": self.user_id, "epoch": self.epoch, "seq": 1}
        times = {"created_at": at, "updated_at": at}
        return JobRecord(
            **(self.spec.values() | {"input": copy.deepcopy(self.spec.input)} | own | times)
        )


#: How long an idempotency key stays taken, by default (``IDEMPOTENCY_TTL_S``).
DEFAULT_IDEMPOTENCY_TTL_S = 86400.0


class JobStore(abc.ABC):
    """Where jobs, their event streams, checkpoints and audit trails live.

    Every method that changes a job does so in one atomic step together with the events it
    appends, so a reader never sees a change without its event or the reverse. Stores raise
    the domain errors of :mod:`server.errors` and never anything else for bad requests.
    """

    def __init__(self, *, backlog_size: int) -> None:
        if backlog_size < 1:
            raise ValueError("backlog_size must be at least 1")
        self.backlog_size = backlog_size

    async def apply(self, job_id: str, change: model.JobChange) -> model.ChangeResult:
        """Apply one conditional change; raise the reason when its conditions do not hold."""
        check_change(change)
        return await self._apply(job_id, change)

    async def update_progress(self, job_id: str, write: ProgressWrite) -> ProgressResult:
        """A worker's progress report: :func:`server.store.progress.progress_change`, with or
        without its event; the result holds the event, not the job. A store may group
        concurrent reports (Postgres does)."""
        result = await self.apply(job_id, progress_change(write))
        return ProgressResult(events=result.events)

    async def create(
        self,
        job: NewJob,
        *,
        event: model.EventSpec,
        idempotency_ttl_s: float = DEFAULT_IDEMPOTENCY_TTL_S,
    ) -> model.ChangeResult:
        """Insert a job in ``created`` with its first event (seq 1).

        With an ``idempotency_key`` that the same user took less than ``idempotency_ttl_s``
        ago (for a job that still exists), nothing is inserted: the result is that job, with
        ``existing`` set. Concurrent creates with one key insert one job.
        """
        return await self._insert(job, event, idempotency_ttl_s)

    async def claim(
        self,
        *,
        types: Sequence[str],
        worker_id: str,
        lease: str,
        max_running_per_user: int = 0,
    ) -> model.ClaimResult | None:
        """Atomically take the claimable job of ``types`` (any type when empty) that comes
        first by :func:`server.store.rules.claim_order`, passing over users who already run
        ``max_running_per_user`` jobs (0: no cap)."""
        return await self._claim(tuple(types), worker_id, lease, max_running_per_user)

    async def open(self) -> None:
        """Acquire resources (pools, schema); called once before use."""

    async def close(self) -> None:
        """Release resources; the store is unusable afterwards."""

    @abc.abstractmethod
    async def _apply(self, job_id: str, change: model.JobChange) -> model.ChangeResult: ...

    @abc.abstractmethod
    async def _insert(
        self, job: NewJob, event: model.EventSpec, idempotency_ttl_s: float
    ) -> model.ChangeResult: ...

    @abc.abstractmethod
    async def _claim(
        self, types: tuple[str, ...], worker_id: str, lease: str, max_running_per_user: int
    ) -> model.ClaimResult | None: ...

    @abc.abstractmethod
    async def delete(self, job_id: str) -> model.StoredJob:
        """Delete a job in a final state with its events, checkpoint, audit trail and
        idempotency key; return it as it was. ``NotFound`` when there is no such job,
        ``InvalidTransition`` when it is not in a final state (nothing changes)."""

    @abc.abstractmethod
    async def delete_finished(self, older_than_s: float, *, limit: int) -> list[model.StoredJob]:
        """Delete up to ``limit`` jobs that have been in a final state for longer than
        ``older_than_s`` seconds, the longest-finished first; return them."""

    @abc.abstractmethod
    async def due_types(self, within_s: float) -> list[str]:
        """Types of ``created`` jobs whose ``run_at`` passed within the last ``within_s``
        seconds (delayed jobs that became claimable), sorted."""

    @abc.abstractmethod
    async def find_timed_out(self, *, limit: int) -> list[model.StoredJob]:
        """Running jobs whose attempt has run longer than their ``timeout_s`` (from the
        claim), the longest-overdue first."""

    @abc.abstractmethod
    async def heartbeat(self, job_id: str, lease: str) -> bool:
        """Record a heartbeat under a fenced lease; return ``pause_requested``."""

    @abc.abstractmethod
    async def get(self, job_id: str) -> model.StoredJob | None: ...

    @abc.abstractmethod
    async def read_stream(self, job_id: str, after_seq: int) -> model.StreamRead | None:
        """The job and its retained events with ``seq > after_seq``, oldest first."""

    @abc.abstractmethod
    async def get_checkpoint(self, job_id: str) -> model.Checkpoint | None: ...

    @abc.abstractmethod
    async def list_jobs(
        self,
        where: model.JobFilter,
        *,
        owner: str | None,
        limit: int,
        after: model.PageCursor | None,
    ) -> model.Page:
        """The jobs of ``owner`` (any owner when None) that ``where`` picks, newest first by
        ``(created_at, id)``, strictly after ``after``."""

    @abc.abstractmethod
    async def read_streams(
        self, requests: Mapping[str, int], *, owner: str | None, max_bytes: int
    ) -> model.StreamBatch:
        """Many :meth:`read_stream` in one read: for each ``job_id -> after_seq`` of
        ``requests`` (in order) the job and its events after that seq, for the jobs that
        exist and belong to ``owner`` (any owner when None; others are not read at all).
        A store that materialises what it reads stops once the jobs before reach
        ``max_bytes`` of stored JSON (the first job always): the ids after are ``unread``."""

    @abc.abstractmethod
    async def list_audit(self, job_id: str, *, limit: int, after: int = 0) -> model.AuditPage:
        """Up to ``limit`` audit entries of the job after position ``after`` (0: from the
        first), oldest first; an unknown job has none."""

    @abc.abstractmethod
    async def count_by_state(self, user_id: str | None) -> dict[JobState, int]: ...

    async def count_active(self, user_id: str) -> int:
        """How many of the user's jobs are in :data:`~server.store.rules.ACTIVE_STATES`
        (``MAX_ACTIVE_JOBS_PER_USER``, before each create). A store may count them without
        reading the user's ended jobs (Postgres does)."""
        counts = await self.count_by_state(user_id)
        return sum(counts.get(state, 0) for state in ACTIVE_STATES)

    @abc.abstractmethod
    async def count_by_state_and_type(self) -> dict[tuple[JobState, str], int]:
        """How many jobs of each type are in each state (pairs with no job left out)."""

    @abc.abstractmethod
    async def find_stale(self, stale_after_s: float, *, limit: int) -> list[model.StoredJob]:
        """Running jobs whose last heartbeat is older than ``stale_after_s`` seconds."""

    @abc.abstractmethod
    async def ping(self) -> None:
        """Raise :class:`server.errors.Unavailable` when the store cannot be reached."""


__all__ = ["DEFAULT_IDEMPOTENCY_TTL_S", "JobStore", "NewJob"]
