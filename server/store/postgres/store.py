"""PostgreSQL job store on asyncpg: the memory store's rules, applied by conditional SQL.

The package, module by module: :mod:`.store` (this: the :class:`~server.store.base.JobStore`
methods), :mod:`.writes` (what one change writes in its transaction, the claim),
:mod:`.fencing` (a change's conditions as SQL), :mod:`.statements` (statements built from a
change or a filter), :mod:`.queries` (the fixed SQL), :mod:`.rows` (row decoding),
:mod:`.clock` (what Postgres's clock has reached, for a create in one statement), :mod:`.pool`
and :mod:`.outages` (connections; outages become ``Unavailable`` in one place),
:mod:`.heartbeat_batch` / :mod:`.progress_batch` / :mod:`.checkpoint_batch` over
:mod:`.write_batch` and :mod:`.batch_answers` (writes grouped across jobs), :mod:`.migrator`
with ``migrations/``, and :mod:`.scan_lock` (one scanning supervisor among instances).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Final

import asyncpg

from jobspine_shared.states import JobState
from server.errors import InvalidTransition, LeaseLost, NotFound, Unavailable
from server.store.base import JobStore, NewJob
from server.store.model import (
    AuditEntry,
    AuditPage,
    ChangeResult,
    Checkpoint,
    ClaimResult,
    EventSpec,
    JobChange,
    JobFilter,
    Page,
    PageCursor,
    StoredJob,
    StreamBatch,
    StreamRead,
)
from server.store.postgres import queries
from server.store.postgres.checkpoint_batch import CheckpointBatcher, batchable
from server.store.postgres.clock import ClockBound
from server.store.postgres.heartbeat_batch import HeartbeatBatcher
from server.store.postgres.pool import DEFAULT_POOL, PoolOptions, StorePool
from server.store.postgres.progress_batch import ProgressBatcher
from server.store.postgres.rows import (
    BOOKKEEPING,
    RECORD_FIELDS,
    events_from_arrays,
    is_job_id,
    job_from_row,
    job_key,
)
from server.store.postgres.statements import list_statement
from server.store.postgres.writes import (
    MAX_CAPPED_USERS,
    ClaimCall,
    FirstClaimMiss,
    claim_once,
    first_claim,
    insert_alone,
    insert_job,
    plan_change,
    refusal_now,
    try_change,
)
from server.store.progress import ProgressResult, ProgressWrite
from server.store.rules import finished_at

log = logging.getLogger(__name__)

#: A refused UPDATE whose re-read finds the change applicable means the job changed in
#: between; retrying more than a few times would mean a bug, not contention.
MAX_APPLY_ATTEMPTS: Final = 5


class PostgresJobStore(JobStore):
    """Jobs in PostgreSQL, for deployments with several ``web`` instances or durable jobs."""

    def __init__(
        self,
        dsn: str,
        *,
        backlog_size: int,
        pool: PoolOptions = DEFAULT_POOL,
        ping_timeout: float = 2.0,
        batch_heartbeats: bool = True,
        batch_progress: bool = True,
        batch_checkpoints: bool = True,
        clock: ClockBound | None = None,
    ) -> None:
        """``batch_heartbeats``: concurrent heartbeats share a statement (group commit,
        :mod:`server.store.postgres.heartbeat_batch`); off, each one is written on its own.
        ``batch_progress``: the same for progress reports
        (:mod:`server.store.postgres.progress_batch`), ``batch_checkpoints`` for checkpoints
        (:mod:`server.store.postgres.checkpoint_batch`). ``clock``: what the store knows of
        Postgres's clock (:mod:`server.store.postgres.clock`; tests inject its wall clock)."""
        super().__init__(backlog_size=backlog_size)
        self._pool = StorePool(dsn, pool)
        #: What Postgres's clock has reached, for creates written as one statement.
        self._clock = clock or ClockBound()
        self._ping_timeout = ping_timeout
        self._heartbeats: HeartbeatBatcher | None = None
        if batch_heartbeats:
            self._heartbeats = HeartbeatBatcher(self._pool.connection)
        self._progress: ProgressBatcher | None = None
        if batch_progress:
            self._progress = ProgressBatcher(
                self._pool.connection,
                decode=job_from_row,
                select_jobs_sql=queries.SELECT_JOBS,
                backlog_size=backlog_size,
            )
        self._checkpoints: CheckpointBatcher | None = None
        if batch_checkpoints:
            self._checkpoints = CheckpointBatcher(
                self._pool.connection,
                columns=RECORD_FIELDS + BOOKKEEPING,
                decode=job_from_row,
                select_jobs_sql=queries.SELECT_JOBS,
                backlog_size=backlog_size,
            )

    @property
    def progress_batcher(self) -> ProgressBatcher | None:
        """The progress batcher (None when batching is off), for its counters."""
        return self._progress

    @property
    def checkpoint_batcher(self) -> CheckpointBatcher | None:
        """The checkpoint batcher (None when batching is off), for its counters."""
        return self._checkpoints

    @property
    def heartbeat_batcher(self) -> HeartbeatBatcher | None:
        """The heartbeat batcher (None when batching is off), for its counters."""
        return self._heartbeats

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect and migrate. When Postgres is down this raises ``Unavailable`` and the
        store stays usable: the next call tries again."""
        await self._pool.open()

    async def close(self) -> None:
        self._pool.closing()
        if self._heartbeats is not None:
            await self._heartbeats.close()  # writes pending heartbeats while the pool is open
        if self._progress is not None:
            await self._progress.close()
        if self._checkpoints is not None:
            await self._checkpoints.close()
        await self._pool.close()

    # -- changes -----------------------------------------------------------------------------

    async def _insert(
        self, job: NewJob, event: EventSpec, idempotency_ttl_s: float
    ) -> ChangeResult:
        at = self._clock.now()
        if at is not None and job.spec.idempotency_key is None:
            async with self._pool.connection() as conn:
                alone = await insert_alone(conn, job, event, at, self._clock)
            if alone is not None:
                return alone
        async with self._pool.transaction() as conn:
            return await insert_job(
                conn,
                job,
                event,
                idempotency_ttl_s,
                backlog_size=self.backlog_size,
                clock=self._clock,
            )

    async def _apply(self, job_id: str, change: JobChange) -> ChangeResult:
        key = job_key(job_id)
        if key is None:
            raise NotFound()
        if self._checkpoints is not None and batchable(change) is not None:
            batched = await self._checkpoints.submit(key, change)
            if batched is not None:
                return batched  # (None: the job changed under the batch, applied below)
        write = plan_change(key, change, backlog_size=self.backlog_size)
        for _ in range(MAX_APPLY_ATTEMPTS):
            # A change written by one statement commits on its own: no BEGIN, no COMMIT.
            scope = self._pool.connection() if write.alone else self._pool.transaction()
            async with scope as conn:
                result = await try_change(conn, write, backlog_size=self.backlog_size)
                if result is not None:
                    return result
                error = await refusal_now(conn, key, change)
            if error is not None:
                raise error
            log.info("job %s changed while %s was applied; retrying", job_id, change.action)
        raise Unavailable("the job kept changing; try again")

    async def _claim(
        self, types: tuple[str, ...], worker_id: str, lease: str, max_running_per_user: int
    ) -> ClaimResult | None:
        call = ClaimCall(
            types=types, worker_id=worker_id, lease=lease, backlog_size=self.backlog_size
        )
        if max_running_per_user == 0:
            async with self._pool.connection() as conn:
                first = await first_claim(conn, call)
            if isinstance(first, ClaimResult):
                return first
            if first is FirstClaimMiss.NOTHING_CLAIMABLE:
                return None
        capped: list[str] = []
        while True:
            async with self._pool.transaction() as conn:
                result = await claim_once(
                    conn, call, max_running_per_user=max_running_per_user, capped=capped
                )
            if not isinstance(result, str):
                return result
            capped.append(result)  # that user reached the cap meanwhile: pass over them
            if len(capped) > MAX_CAPPED_USERS:
                return None

    async def update_progress(self, job_id: str, write: ProgressWrite) -> ProgressResult:
        """Grouped with concurrent reports of other jobs when batching is on."""
        key = job_key(job_id)
        if key is None:
            raise NotFound()
        if self._progress is not None:
            result = await self._progress.submit(key, job_id, write)
            if result is not None:
                return result
        return await super().update_progress(job_id, write)

    async def heartbeat(self, job_id: str, lease: str) -> bool:
        if not is_job_id(job_id):  # the id as it is: asyncpg encodes it (no uuid.UUID)
            raise NotFound()
        if self._heartbeats is not None:
            return await self._heartbeats.submit(job_id, lease)
        async with self._pool.connection() as conn:
            pause_requested = await conn.fetchval(queries.HEARTBEAT_SQL, job_id, lease)
            if pause_requested is not None:
                return bool(pause_requested)
            state = await conn.fetchval(queries.JOB_STATE, job_id)
        if state is None:
            raise NotFound()
        # A lease once lost never comes back, so this answer cannot be stale.
        raise LeaseLost(details={"state": str(state), "job_id": job_id})

    # -- reads -------------------------------------------------------------------------------

    async def _job_row(self, sql: str, job_id: str, *args: object) -> asyncpg.Record | None:
        """The row ``sql`` reads of one job (``$1`` its key, then ``args``); None for an id
        no job has, without a query when it is not a canonical uuid."""
        key = job_key(job_id)
        if key is None:
            return None
        async with self._pool.connection() as conn:
            row: asyncpg.Record | None = await conn.fetchrow(sql, key, *args)
        return row

    async def get(self, job_id: str) -> StoredJob | None:
        row = await self._job_row(queries.SELECT_JOB, job_id)
        return job_from_row(row) if row is not None else None

    async def read_stream(self, job_id: str, after_seq: int) -> StreamRead | None:
        # One statement, one snapshot: the events are exactly those up to the job's seq.
        row = await self._job_row(queries.READ_STREAM, job_id, after_seq)
        if row is None:
            return None
        job = job_from_row(row)
        return StreamRead(job=job, events=events_from_arrays(job.record, row))

    async def get_checkpoint(self, job_id: str) -> Checkpoint | None:
        row = await self._job_row(queries.SELECT_CHECKPOINT, job_id)
        if row is None or row["data"] is None:
            return None
        job = job_from_row(row)
        if job.checkpoint is None:
            return None
        return Checkpoint(info=job.checkpoint, data=row["data"])

    async def list_jobs(
        self, where: JobFilter, *, owner: str | None, limit: int, after: PageCursor | None
    ) -> Page:
        statement = list_statement(where, owner=owner, limit=limit, after=after)
        async with self._pool.connection() as conn:
            rows = await conn.fetch(statement.sql, *statement.args)
        records = [job_from_row(row).record for row in rows]
        return Page.first(records, limit)

    async def read_streams(
        self, requests: Mapping[str, int], *, owner: str | None, max_bytes: int
    ) -> StreamBatch:
        keys = {job_id: key for job_id in requests if (key := job_key(job_id)) is not None}
        if not keys:
            return StreamBatch(reads={})
        wanted = list(keys)
        async with self._pool.connection() as conn:
            rows = await conn.fetch(
                queries.READ_STREAMS,
                [keys[job_id] for job_id in wanted],
                [requests[job_id] for job_id in wanted],
                owner,
                max_bytes,
            )
        reads = {}
        for row in rows:
            job = job_from_row(row)
            reads[job.record.id] = StreamRead(job=job, events=events_from_arrays(job.record, row))
        cut = bool(rows) and rows[-1]["through_bytes"] >= max_bytes
        unread = tuple(wanted[rows[-1]["wanted_order"] :]) if cut else ()
        return StreamBatch(reads=reads, unread=unread)

    async def list_audit(self, job_id: str, *, limit: int, after: int = 0) -> AuditPage:
        key = job_key(job_id)
        if key is None:
            return AuditPage(entries=(), next_after=None)
        async with self._pool.connection() as conn:
            rows = await conn.fetch(queries.SELECT_AUDIT, key, after, limit + 1)
        page = rows[:limit]
        entries = tuple(
            AuditEntry(action=r["action"], actor=r["actor"], at=r["at"], details=r["details"])
            for r in page
        )
        return AuditPage(entries=entries, next_after=page[-1]["id"] if len(rows) > limit else None)

    async def count_by_state(self, user_id: str | None) -> dict[JobState, int]:
        async with self._pool.connection() as conn:
            if user_id is None:
                rows = await conn.fetch(queries.COUNT_ALL)
            else:
                rows = await conn.fetch(queries.COUNT_USER, user_id)
        counts = dict.fromkeys(JobState, 0)
        counts.update({JobState(r["state"]): r["n"] for r in rows})
        return counts

    async def count_active(self, user_id: str) -> int:
        async with self._pool.connection() as conn:
            count: int = await conn.fetchval(queries.COUNT_ACTIVE, user_id)
        return count

    async def count_by_state_and_type(self) -> dict[tuple[JobState, str], int]:
        async with self._pool.connection() as conn:
            rows = await conn.fetch(queries.COUNT_BY_STATE_AND_TYPE)
        return {(JobState(r["state"]), r["type"]): r["n"] for r in rows}

    async def find_stale(self, stale_after_s: float, *, limit: int) -> list[StoredJob]:
        async with self._pool.connection() as conn:
            rows = await conn.fetch(queries.FIND_STALE_SQL, float(stale_after_s), limit)
        return [job_from_row(row) for row in rows]

    async def due_types(self, within_s: float) -> list[str]:
        async with self._pool.connection() as conn:
            rows = await conn.fetch(queries.DUE_TYPES_SQL, float(within_s))
        return [row["type"] for row in rows]

    async def find_timed_out(self, *, limit: int) -> list[StoredJob]:
        async with self._pool.connection() as conn:
            rows = await conn.fetch(queries.FIND_TIMED_OUT_SQL, limit)
        return [job_from_row(row) for row in rows]

    async def delete(self, job_id: str) -> StoredJob:
        key = job_key(job_id)
        if key is None:
            raise NotFound()
        async with self._pool.transaction() as conn:
            row = await conn.fetchrow(queries.DELETE_JOB, key)
            if row is not None:
                return job_from_row(row)
            state = await conn.fetchval(queries.JOB_STATE, key)
        if state is None:
            raise NotFound()
        raise InvalidTransition(
            f"cannot delete a job that is {state}", details={"state": state, "action": "delete"}
        )

    async def delete_finished(self, older_than_s: float, *, limit: int) -> list[StoredJob]:
        async with self._pool.transaction() as conn:
            rows = await conn.fetch(queries.DELETE_FINISHED_SQL, float(older_than_s), limit)
        deleted = [job_from_row(row) for row in rows]
        # DELETE … RETURNING has no order: the longest-finished first, as documented.
        deleted.sort(
            key=lambda job: (finished_at(job.record) or job.record.updated_at, job.record.id)
        )
        return deleted

    async def ping(self) -> None:
        async with self._pool.connection(acquire_timeout=self._ping_timeout) as conn:
            await conn.fetchval("SELECT 1", timeout=self._ping_timeout)


__all__ = ["MAX_APPLY_ATTEMPTS", "PostgresJobStore"]
