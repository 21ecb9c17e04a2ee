"""PostgreSQL job store on asyncpg: the memory store's rules, applied by conditional SQL.

Every change is race-free without read-modify-write: one transaction runs a single
conditional ``UPDATE … WHERE <the change's conditions> RETURNING`` (the row lock it takes,
held until commit, orders concurrent changes of a job, and Postgres re-checks the conditions
on the row a waiting UPDATE finally gets), then appends the events with the seqs that UPDATE
reserved, writes the checkpoint and the audit entry. When the UPDATE matches
nothing, the job is read to name the reason with :func:`server.store.rules.refusal`, the same
function the memory store uses, so both stores refuse with the same errors.

Connection-level failures become :class:`server.errors.Unavailable` in one place
(:func:`unavailable_on_outage`); the pool reconnects by itself when Postgres returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Final, TypeAlias

import asyncpg
import attrs
from asyncpg.pool import PoolConnectionProxy

from jobspine_shared.events import EventType
from jobspine_shared.models import JobError, JobEvent, JobRecord, RetryPolicy
from jobspine_shared.states import JobState
from server.errors import InvalidTransition, JobspineError, LeaseLost, NotFound, Unavailable
from server.store.base import JobStore, NewJob
from server.store.claiming import claim_change
from server.store.heartbeat_batch import DEFAULT_MAX_DELAY_S, HeartbeatBatcher
from server.store.migrator import apply_migrations
from server.store.model import (
    CLEAR_CHECKPOINT,
    NOW,
    AuditEntry,
    AuditWrite,
    ChangeResult,
    Checkpoint,
    CheckpointInfo,
    CheckpointWrite,
    ClaimResult,
    EventSpec,
    JobChange,
    JobFilter,
    Later,
    Page,
    PageCursor,
    StoredJob,
    StreamRead,
)
from server.store.progress import ProgressWrite
from server.store.progress_batch import DEFAULT_MAX_DELAY_S as PROGRESS_BATCH_DELAY_S
from server.store.progress_batch import ProgressBatcher
from server.store.rules import clears_lease, finished_at, implied_fields, refusal

log = logging.getLogger(__name__)

#: What the pool hands out (a string: asyncpg classes are not subscriptable at runtime).
Connection: TypeAlias = "PoolConnectionProxy[asyncpg.Record]"

#: A refused UPDATE whose re-read finds the change applicable means the job changed in
#: between; retrying more than a few times would mean a bug, not contention.
MAX_APPLY_ATTEMPTS: Final = 5

# -- outages ---------------------------------------------------------------------------------

#: Failures that say "Postgres cannot be reached right now", not "this request is wrong".
OUTAGE_ERRORS: Final[tuple[type[BaseException], ...]] = (
    OSError,
    TimeoutError,  # also asyncpg's command timeout and the pool's acquire timeout
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
    # The database itself is gone or not (yet) ours: an operator's problem that ends when
    # it is restored, so callers get 503 and the pool keeps trying, as for a down server.
    asyncpg.exceptions.InvalidCatalogNameError,
    asyncpg.exceptions.InvalidAuthorizationSpecificationError,
    asyncpg.InterfaceError,  # among others ConnectionDoesNotExistError, "pool is closing"
    # The protocol is in a state no request can start from; seen when a backend's FATAL
    # (a Postgres restart) arrived but its socket's EOF has not been processed yet.
    asyncpg.exceptions.InternalClientError,
)

#: InterfaceErrors raised for a bad value or configuration: bugs to surface, not outages.
_CLIENT_BUGS: Final[tuple[type[BaseException], ...]] = (
    asyncpg.exceptions.DataError,
    asyncpg.exceptions.ClientConfigurationError,
    asyncpg.exceptions.UnsupportedClientFeatureError,
)


@contextlib.contextmanager
def unavailable_on_outage() -> Iterator[None]:
    """Turn a connection-level failure into ``Unavailable`` (HTTP 503), the contract's answer
    while the store is unreachable; domain errors and bugs pass through unchanged."""
    try:
        yield
    except _CLIENT_BUGS:
        raise
    except OUTAGE_ERRORS as exc:
        raise Unavailable() from exc


# -- rows ------------------------------------------------------------------------------------

_RECORD_FIELDS: Final = tuple(field.name for field in attrs.fields(JobRecord))
_BOOKKEEPING: Final = (
    "lease",
    "worker_id",
    "checkpoint_size",
    "checkpoint_progress",
    "checkpoint_keys",
)
_JOB_COLUMNS: Final = ", ".join(_RECORD_FIELDS + _BOOKKEEPING)
#: Columns a change may name: record fields, except the identity.
_SETTABLE: Final = frozenset(_RECORD_FIELDS) - {"id"}


def job_from_row(row: asyncpg.Record) -> StoredJob:
    """The one mapping from a ``jobs`` row to what every store returns."""
    values = {name: row[name] for name in _RECORD_FIELDS}
    values["id"] = str(row["id"])
    values["state"] = JobState(row["state"])
    values["error"] = _error_from_json(row["error"])
    values["tags"] = tuple(row["tags"])
    values["retry"] = RetryPolicy(**row["retry"])
    values["parent_id"] = None if row["parent_id"] is None else str(row["parent_id"])
    checkpoint = None
    if row["has_checkpoint"]:
        checkpoint = CheckpointInfo(
            saved_at=row["checkpoint_at"],
            size_bytes=row["checkpoint_size"],
            progress=row["checkpoint_progress"],
            keys=tuple(row["checkpoint_keys"]),
        )
    return StoredJob(
        record=JobRecord(**values),
        lease=row["lease"],
        worker_id=row["worker_id"],
        checkpoint=checkpoint,
    )


def _error_from_json(value: Mapping[str, Any] | None) -> JobError | None:
    if value is None:
        return None
    return JobError(
        code=value["code"], message=value["message"], retryable=bool(value.get("retryable"))
    )


def _error_to_json(value: JobError | Mapping[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    if isinstance(value, JobError):
        return attrs.asdict(value)
    return dict(value)


def _column_value(name: str, value: Any) -> Any:
    """A record field's value as its column takes it."""
    if name == "state":
        return JobState(value).value
    if name == "error":
        return _error_to_json(value)
    if name == "retry":
        return attrs.asdict(value)
    if name == "tags":
        return list(value)
    if name == "parent_id" and value is not None:
        return uuid.UUID(value)
    return value


def _job_key(job_id: str) -> uuid.UUID | None:
    """The uuid of a canonical job id; None for anything else, which no job has (as in the
    memory store, whose keys are these strings)."""
    try:
        key = uuid.UUID(job_id)
    except (ValueError, TypeError, AttributeError):
        return None
    return key if str(key) == job_id else None


def _events_from_arrays(job: JobRecord, row: asyncpg.Record) -> tuple[JobEvent, ...]:
    """The events of a :data:`_READ_STREAM` row (its parallel arrays; NULL for none)."""
    if row["seqs"] is None:
        return ()
    return tuple(
        JobEvent(
            job_id=job.id,
            user_id=job.user_id,
            seq=seq,
            epoch=job.epoch,
            type=EventType(type_),
            at=at,
            data=data,
        )
        for seq, type_, at, data in zip(
            row["seqs"], row["types"], row["ats"], row["datas"], strict=True
        )
    )


def _render_events(
    job: StoredJob, specs: Sequence[EventSpec], at: datetime
) -> tuple[JobEvent, ...]:
    """The events of a change, numbered up to the job's new seq, rendered from the changed job."""
    record = job.record
    first = record.seq - len(specs) + 1
    return tuple(
        JobEvent(
            job_id=record.id,
            user_id=record.user_id,
            seq=first + i,
            epoch=record.epoch,
            type=spec.type,
            at=at,
            data=spec.render(job),
        )
        for i, spec in enumerate(specs)
    )


# -- statements ------------------------------------------------------------------------------


class _Params:
    """Collects a statement's arguments and hands out their ``$n`` placeholders."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def add(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}"


@attrs.frozen
class _Statement:
    sql: str
    args: tuple[Any, ...]


_SELECT_JOB: Final = f"SELECT {_JOB_COLUMNS}, now() AS store_now FROM jobs WHERE id = $1"
_SELECT_JOBS: Final = (
    f"SELECT {_JOB_COLUMNS}, now() AS store_now FROM jobs WHERE id = ANY($1::uuid[])"
)

_INSERT_JOB: Final = f"""
INSERT INTO jobs (id, user_id, type, input, epoch, seq, created_at, updated_at,
                  priority, run_at, tags, parent_id, timeout_s, retry, idempotency_key,
                  correlation_id)
VALUES ($1, $2, $3, $4, $5, 1, now(), now(), $6, $7, $8, $9, $10, $11, $12, $13)
RETURNING {_JOB_COLUMNS}, now() AS store_now
"""

#: Take an idempotency key: a new one, or one whose holder took it more than the TTL ago.
#: A live key returns no row; a concurrent create of the same key waits here for the first
#: to commit (the unique index), then finds it live.
_TAKE_KEY: Final = """
INSERT INTO job_idempotency AS k (user_id, key, job_id, created_at)
VALUES ($1, $2, $3, now())
ON CONFLICT (user_id, key) DO UPDATE
    SET job_id = EXCLUDED.job_id, created_at = EXCLUDED.created_at
    WHERE k.created_at <= now() - make_interval(secs => $4)
RETURNING job_id
"""

_KEY_HOLDER: Final = f"""
SELECT {_JOB_COLUMNS}, now() AS store_now FROM jobs
WHERE id = (SELECT job_id FROM job_idempotency WHERE user_id = $1 AND key = $2)
"""

#: Append a change's events and drop those past the backlog, in one statement. Events that
#: would be dropped at once (more new events than the backlog holds) are not inserted.
_APPEND_EVENTS: Final = """
WITH trimmed AS (
    DELETE FROM job_events WHERE job_id = $1 AND seq <= $2
)
INSERT INTO job_events (job_id, seq, type, at, data)
SELECT $1, e.seq, e.type, $3, e.data
FROM unnest($4::bigint[], $5::text[], $6::jsonb[]) AS e(seq, type, data)
WHERE e.seq > $2
"""

_UPSERT_CHECKPOINT: Final = """
INSERT INTO job_checkpoints (job_id, data) VALUES ($1, $2)
ON CONFLICT (job_id) DO UPDATE SET data = EXCLUDED.data
"""

_DELETE_CHECKPOINT: Final = "DELETE FROM job_checkpoints WHERE job_id = $1"

_INSERT_AUDIT: Final = """
INSERT INTO job_audit (job_id, action, actor, at, details) VALUES ($1, $2, $3, $4, $5)
"""

#: The claimable job that comes first (highest priority, then oldest; ``run_at`` reached),
#: locked; SKIP LOCKED lets concurrent claims take the next one. ``$1``: users to pass over
#: (those at MAX_RUNNING_PER_USER), ``$2``: the cap (0: none). Two statements rather than
#: one with ``cardinality(types) = 0 OR …`` so each gets the plan of its own partial index.
_CLAIMABLE: Final = """
state = 'created' AND (run_at IS NULL OR run_at <= now()) AND user_id <> ALL($1::text[])
AND ($2::int = 0 OR (
    SELECT count(*) FROM jobs AS r WHERE r.state = 'running' AND r.user_id = jobs.user_id
) < $2::int)
"""

CLAIM_ANY_SQL: Final = f"""
SELECT {_JOB_COLUMNS} FROM jobs
WHERE {_CLAIMABLE}
ORDER BY priority DESC, created_at, id
LIMIT 1
FOR UPDATE SKIP LOCKED
"""

CLAIM_TYPES_SQL: Final = f"""
SELECT {_JOB_COLUMNS} FROM jobs
WHERE {_CLAIMABLE} AND type = ANY($3::text[])
ORDER BY priority DESC, created_at, id
LIMIT 1
FOR UPDATE SKIP LOCKED
"""

#: Under the cap, concurrent claims of one user's jobs could each count the others out;
#: they recount one at a time under this lock (its second key: the user's hash).
_CAP_LOCK: Final = "SELECT pg_advisory_xact_lock($1, hashtext($2))"
_CAP_LOCK_KEY: Final = 0x6A73_6361  # "jsca"
_COUNT_RUNNING: Final = "SELECT count(*) FROM jobs WHERE state = 'running' AND user_id = $1"
#: Users passed over because they reached the cap, at most this many per claim.
MAX_CAPPED_USERS: Final = 8

#: Running attempts past their ``timeout_s``; served by ``jobs_running_idx``.
FIND_TIMED_OUT_SQL: Final = f"""
SELECT {_JOB_COLUMNS} FROM jobs
WHERE state = 'running' AND timeout_s IS NOT NULL
  AND started_at + make_interval(secs => timeout_s) < now()
ORDER BY started_at + make_interval(secs => timeout_s), id
LIMIT $1
"""

#: Delayed jobs that became due lately; served by ``jobs_delayed_idx``.
DUE_TYPES_SQL: Final = """
SELECT DISTINCT type FROM jobs
WHERE state = 'created' AND run_at IS NOT NULL
  AND run_at > now() - make_interval(secs => $1) AND run_at <= now()
ORDER BY type
"""

_FINISHED_AT: Final = """CASE state
        WHEN 'completed' THEN completed_at
        WHEN 'failed' THEN failed_at
        WHEN 'cancelled' THEN cancelled_at
    END"""

_DELETE_JOB: Final = f"""
DELETE FROM jobs WHERE id = $1 AND state IN ('completed', 'failed', 'cancelled')
RETURNING {_JOB_COLUMNS}
"""

#: Retention: one bounded batch, served by ``jobs_finished_idx``; SKIP LOCKED leaves a
#: job another transaction is changing (a restart) alone.
DELETE_FINISHED_SQL: Final = f"""
DELETE FROM jobs WHERE id IN (
    SELECT id FROM jobs
    WHERE state IN ('completed', 'failed', 'cancelled')
      AND ({_FINISHED_AT}) < now() - make_interval(secs => $1)
    ORDER BY ({_FINISHED_AT})
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
RETURNING {_JOB_COLUMNS}
"""

#: A heartbeat, fenced by the lease in the same statement. It writes only
#: ``last_heartbeat_at``, which no index contains, so the UPDATE is HOT.
HEARTBEAT_SQL: Final = """
UPDATE jobs SET last_heartbeat_at = now()
WHERE id = $1 AND state = 'running' AND lease = $2
RETURNING pause_requested
"""

#: The supervisor's scan; served by the partial index ``jobs_running_idx``.
FIND_STALE_SQL: Final = f"""
SELECT {_JOB_COLUMNS} FROM jobs
WHERE state = 'running' AND last_heartbeat_at < now() - make_interval(secs => $1)
ORDER BY last_heartbeat_at, id
LIMIT $2
"""

#: A job and its events after a seq, in one statement: one snapshot without a transaction,
#: one round trip instead of four (BEGIN, two reads, COMMIT); replays run it on every
#: subscribe that carries ``after_seq`` (docs/performance.md, measure d).
_READ_STREAM: Final = f"""
SELECT {_JOB_COLUMNS}, now() AS store_now, ev.seqs, ev.types, ev.ats, ev.datas
FROM jobs
LEFT JOIN LATERAL (
    SELECT array_agg(e.seq ORDER BY e.seq) AS seqs, array_agg(e.type ORDER BY e.seq) AS types,
           array_agg(e.at ORDER BY e.seq) AS ats, array_agg(e.data ORDER BY e.seq) AS datas
    FROM job_events AS e WHERE e.job_id = jobs.id AND e.seq > $2
) AS ev ON true
WHERE id = $1
"""

_SELECT_CHECKPOINT: Final = f"""
SELECT {_JOB_COLUMNS}, (SELECT data FROM job_checkpoints WHERE job_id = jobs.id) AS data
FROM jobs WHERE id = $1
"""

_SELECT_AUDIT: Final = """
SELECT action, actor, at, details FROM job_audit WHERE job_id = $1 ORDER BY id
"""

_COUNT_ALL: Final = "SELECT state, count(*) AS n FROM jobs GROUP BY state"
_COUNT_BY_STATE_AND_TYPE: Final = "SELECT state, type, count(*) AS n FROM jobs GROUP BY state, type"
_COUNT_USER: Final = "SELECT state, count(*) AS n FROM jobs WHERE user_id = $1 GROUP BY state"


def update_statement(key: uuid.UUID, change: JobChange) -> _Statement:
    """The single conditional UPDATE that applies ``change`` when all its conditions hold.

    The WHERE clause is :func:`server.store.rules.refusal` in SQL; the SET clause is
    :func:`server.store.rules.apply_in_memory` in SQL, with ``now()`` for ``NOW``.
    """
    params = _Params()
    conditions = [
        f"id = {params.add(key)}",
        f"state = ANY({params.add(sorted(s.value for s in change.from_states))}::job_state[])",
    ]
    if change.lease is not None:
        conditions.append(f"state = 'running' AND lease = {params.add(change.lease)}")
    if change.require_pause_requested:
        conditions.append("pause_requested")
    if change.progress_at_most is not None:
        conditions.append(f"progress <= {params.add(change.progress_at_most)}")
    if change.stale_after_s is not None:
        conditions.append(
            "(last_heartbeat_at IS NULL OR last_heartbeat_at < now() - make_interval(secs => "
            f"{params.add(float(change.stale_after_s))}))"
        )
    assignments = ", ".join(f"{c} = {e}" for c, e in _assignments(change, params).items())
    sql = (
        f"UPDATE jobs SET {assignments} WHERE {' AND '.join(conditions)} "
        f"RETURNING {_JOB_COLUMNS}, now() AS store_now"
    )
    return _Statement(sql, tuple(params.values))


def _assignments(change: JobChange, params: _Params) -> dict[str, str]:
    """Column -> SQL expression; later entries override earlier ones, as in memory."""
    sets: dict[str, str] = {}
    for name, value in implied_fields(change).items():
        _check_settable(name)
        if value is NOW:
            sets[name] = "now()"
        elif isinstance(value, Later):
            sets[name] = f"now() + make_interval(secs => {params.add(float(value.seconds))})"
        else:
            sets[name] = params.add(_column_value(name, value))
    for name, amount in change.increments.items():
        _check_settable(name)
        sets[name] = f"{name} + {params.add(amount)}"
    sets["seq"] = f"seq + {params.add(len(change.events))}"
    if change.new_lease is not None:
        sets["lease"] = params.add(change.new_lease)
        sets["worker_id"] = params.add(change.worker_id)
    elif clears_lease(change):
        sets["lease"] = "NULL"
    sets.update(_checkpoint_assignments(change.checkpoint, params))
    return sets


def _checkpoint_assignments(
    checkpoint: CheckpointWrite | str | None, params: _Params
) -> dict[str, str]:
    if checkpoint == CLEAR_CHECKPOINT:
        return dict.fromkeys(
            ("checkpoint_at", "checkpoint_size", "checkpoint_progress", "checkpoint_keys"), "NULL"
        ) | {"has_checkpoint": "false"}
    if isinstance(checkpoint, CheckpointWrite):
        return {
            "has_checkpoint": "true",
            "checkpoint_at": "now()",
            "checkpoint_size": params.add(checkpoint.size_bytes),
            "checkpoint_progress": params.add(float(checkpoint.progress)),
            "checkpoint_keys": params.add(list(checkpoint.keys)),
        }
    return {}


def _check_settable(name: str) -> None:
    """Column names go into SQL text: only the record's own fields may."""
    if name not in _SETTABLE:
        raise ValueError(f"a change cannot set {name!r}")


def list_statement(where: JobFilter, *, limit: int, after: PageCursor | None) -> _Statement:
    """Newest first by ``(created_at, id)``, keyset-paginated; one row more than a page
    tells whether there is a next one."""
    params = _Params()
    conditions: list[str] = []
    if where.user_id is not None:
        conditions.append(f"user_id = {params.add(where.user_id)}")
    if where.state is not None:
        conditions.append(f"state = {params.add(where.state.value)}")
    if where.type is not None:
        conditions.append(f"type = {params.add(where.type)}")
    if where.tag is not None:
        conditions.append(f"tags @> ARRAY[{params.add(where.tag)}::text]")
    if where.parent_id is not None:
        conditions.append(f"parent_id = {params.add(uuid.UUID(where.parent_id))}")
    if where.priority is not None:
        conditions.append(f"priority = {params.add(where.priority)}")
    if after is not None:
        cursor = f"({params.add(after.created_at)}, {params.add(uuid.UUID(after.id))})"
        conditions.append(f"(created_at, id) < {cursor}")
    where_sql = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    sql = (
        f"SELECT {_JOB_COLUMNS} FROM jobs {where_sql} "
        f"ORDER BY created_at DESC, id DESC LIMIT {params.add(limit + 1)}"
    )
    return _Statement(sql, tuple(params.values))


# -- the store -------------------------------------------------------------------------------


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


async def _init_connection(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    """json/jsonb columns take and give Python objects."""
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(
            type_name, encoder=_dumps, decoder=json.loads, schema="pg_catalog"
        )


class PostgresJobStore(JobStore):
    """Jobs in PostgreSQL, for deployments with several ``web`` instances or durable jobs."""

    def __init__(
        self,
        dsn: str,
        *,
        backlog_size: int,
        min_pool: int = 1,
        max_pool: int = 10,
        connect_timeout: float = 5.0,
        command_timeout: float = 10.0,
        acquire_timeout: float = 5.0,
        ping_timeout: float = 2.0,
        heartbeat_batch_delay_s: float = DEFAULT_MAX_DELAY_S,
        progress_batch_delay_s: float = PROGRESS_BATCH_DELAY_S,
    ) -> None:
        """``heartbeat_batch_delay_s``: how long a heartbeat may wait for others to share its
        statement (:mod:`server.store.heartbeat_batch`); 0 writes each one on its own.
        ``progress_batch_delay_s``: the same for progress reports
        (:mod:`server.store.progress_batch`)."""
        super().__init__(backlog_size=backlog_size)
        if heartbeat_batch_delay_s < 0 or progress_batch_delay_s < 0:
            raise ValueError("batch delays must not be negative")
        self._dsn = dsn
        self._min_pool = min_pool
        self._max_pool = max_pool
        self._connect_timeout = connect_timeout
        self._command_timeout = command_timeout
        self._acquire_timeout = acquire_timeout
        self._ping_timeout = ping_timeout
        self._pool: asyncpg.Pool[asyncpg.Record] | None = None
        self._opening: asyncio.Future[asyncpg.Pool[asyncpg.Record]] | None = None
        self._closed = False
        self._heartbeats: HeartbeatBatcher | None = None
        if heartbeat_batch_delay_s > 0:
            self._heartbeats = HeartbeatBatcher(
                self._connection, max_delay_s=heartbeat_batch_delay_s
            )

        self._progress: ProgressBatcher | None = None
        if progress_batch_delay_s > 0:
            self._progress = ProgressBatcher(
                self._connection,
                columns=_RECORD_FIELDS + _BOOKKEEPING,
                decode=job_from_row,
                select_jobs_sql=_SELECT_JOBS,
                backlog_size=backlog_size,
                max_delay_s=progress_batch_delay_s,
            )

    @property
    def progress_batcher(self) -> ProgressBatcher | None:
        """The progress batcher (None when batching is off), for its counters."""
        return self._progress

    @property
    def heartbeat_batcher(self) -> HeartbeatBatcher | None:
        """The heartbeat batcher (None when batching is off), for its counters."""
        return self._heartbeats

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect and migrate. When Postgres is down this raises ``Unavailable`` and the
        store stays usable: the next call tries again."""
        with unavailable_on_outage():
            await self._ensure_pool()

    async def close(self) -> None:
        self._closed = True
        if self._opening is not None:
            self._opening.cancel()
        if self._heartbeats is not None:
            await self._heartbeats.close()  # writes pending heartbeats while the pool is open
        if self._progress is not None:
            await self._progress.close()
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), timeout=self._command_timeout)
        except OUTAGE_ERRORS:
            pool.terminate()

    async def _ensure_pool(self) -> asyncpg.Pool[asyncpg.Record]:
        """The pool, created (and the schema migrated) on first use, so a failed ``open`` is
        retried by whichever call comes next.

        Concurrent callers share one attempt: while Postgres is down, a burst of requests
        costs one connection attempt, not one each in a queue.
        """
        if self._pool is not None:
            return self._pool
        if self._closed:
            raise Unavailable("the job store is closed")
        if self._opening is None:
            self._opening = asyncio.ensure_future(self._create_pool())
            self._opening.add_done_callback(self._pool_created)
        # Shielded: one caller giving up must not cancel the attempt the others wait for.
        return await asyncio.shield(self._opening)

    def _pool_created(self, attempt: asyncio.Future[asyncpg.Pool[asyncpg.Record]]) -> None:
        self._opening = None
        if attempt.cancelled() or attempt.exception() is not None:
            return  # (retrieving the exception keeps asyncio from logging it as lost)
        pool = attempt.result()
        if self._closed:
            pool.terminate()  # closed while connecting
        else:
            self._pool = pool

    async def _create_pool(self) -> asyncpg.Pool[asyncpg.Record]:
        pool = await asyncpg.create_pool(
            self._dsn,
            min_size=self._min_pool,
            max_size=self._max_pool,
            timeout=self._connect_timeout,
            command_timeout=self._command_timeout,
            init=_init_connection,
            server_settings={"application_name": "jobspine", "jit": "off"},
        )
        try:
            async with pool.acquire(timeout=self._acquire_timeout) as conn:
                await apply_migrations(conn)
        except BaseException:
            pool.terminate()
            raise
        return pool

    @contextlib.asynccontextmanager
    async def _connection(self, acquire_timeout: float | None = None) -> AsyncIterator[Connection]:
        """A pooled connection; the single place where outages become ``Unavailable``."""
        with unavailable_on_outage():
            pool = await self._ensure_pool()
            async with pool.acquire(timeout=acquire_timeout or self._acquire_timeout) as conn:
                yield conn

    @contextlib.asynccontextmanager
    async def _transaction(self, **options: Any) -> AsyncIterator[Connection]:
        async with self._connection() as conn, conn.transaction(**options):
            yield conn

    # -- changes -----------------------------------------------------------------------------

    async def _insert(
        self, job: NewJob, event: EventSpec, idempotency_ttl_s: float
    ) -> ChangeResult:
        async with self._transaction() as conn:
            if job.idempotency_key is not None:
                taken = await conn.fetchval(
                    _TAKE_KEY,
                    job.user_id,
                    job.idempotency_key,
                    uuid.UUID(job.id),
                    float(idempotency_ttl_s),
                )
                if taken is None:
                    holder = await conn.fetchrow(_KEY_HOLDER, job.user_id, job.idempotency_key)
                    assert holder is not None  # the key row's job is deleted with it
                    return ChangeResult(job=job_from_row(holder), events=(), existing=True)
            row = await conn.fetchrow(
                _INSERT_JOB,
                uuid.UUID(job.id),
                job.user_id,
                job.type,
                job.input,
                job.epoch,
                job.priority,
                job.run_at,
                list(job.tags),
                None if job.parent_id is None else uuid.UUID(job.parent_id),
                job.timeout_s,
                attrs.asdict(job.retry),
                job.idempotency_key,
                job.correlation_id,
            )
            assert row is not None
            stored = job_from_row(row)
            events = _render_events(stored, (event,), row["store_now"])
            await self._append_events(conn, events)
            return ChangeResult(job=stored, events=events)

    async def _apply(self, job_id: str, change: JobChange) -> ChangeResult:
        key = _job_key(job_id)
        if key is None:
            raise NotFound()
        statement = update_statement(key, change)
        for _ in range(MAX_APPLY_ATTEMPTS):
            async with self._transaction() as conn:
                result = await self._try_change(conn, statement, change)
                if result is not None:
                    return result
                error = await self._refusal(conn, key, change)
            if error is not None:
                raise error
            log.info("job %s changed while %s was applied; retrying", job_id, change.action)
        raise Unavailable("the job kept changing; try again")

    async def _try_change(
        self, conn: Connection, statement: _Statement, change: JobChange
    ) -> ChangeResult | None:
        """Run the conditional UPDATE; when it matched, write what goes with it."""
        row = await conn.fetchrow(statement.sql, *statement.args)
        if row is None:
            return None
        job = job_from_row(row)
        at: datetime = row["store_now"]
        events = _render_events(job, change.events, at)
        await self._append_events(conn, events)
        await self._write_checkpoint(conn, row["id"], change.checkpoint)
        if change.audit is not None:
            await self._write_audit(conn, row["id"], change.audit, at)
        return ChangeResult(job=job, events=events)

    @staticmethod
    async def _refusal(conn: Connection, key: uuid.UUID, change: JobChange) -> JobspineError | None:
        """Why the UPDATE matched nothing, judged on the job as it is now by the shared rules;
        None when it has changed since and the change now applies."""
        row = await conn.fetchrow(_SELECT_JOB, key)
        if row is None:
            return NotFound()
        return refusal(job_from_row(row), change, row["store_now"])

    async def _append_events(self, conn: Connection, events: Sequence[JobEvent]) -> None:
        if not events:
            return
        latest = events[-1].seq
        await conn.execute(
            _APPEND_EVENTS,
            uuid.UUID(events[0].job_id),
            latest - self.backlog_size,
            events[0].at,
            [e.seq for e in events],
            [e.type.value for e in events],
            [e.data for e in events],
        )

    @staticmethod
    async def _write_checkpoint(
        conn: Connection, key: uuid.UUID, checkpoint: CheckpointWrite | str | None
    ) -> None:
        if isinstance(checkpoint, CheckpointWrite):
            await conn.execute(_UPSERT_CHECKPOINT, key, checkpoint.data)
        elif checkpoint == CLEAR_CHECKPOINT:
            await conn.execute(_DELETE_CHECKPOINT, key)

    @staticmethod
    async def _write_audit(
        conn: Connection, key: uuid.UUID, audit: AuditWrite, at: datetime
    ) -> None:
        await conn.execute(_INSERT_AUDIT, key, audit.action, audit.actor, at, dict(audit.details))

    async def _claim(
        self, types: tuple[str, ...], worker_id: str, lease: str, max_running_per_user: int
    ) -> ClaimResult | None:
        capped: list[str] = []
        while True:
            result = await self._claim_once(types, worker_id, lease, max_running_per_user, capped)
            if not isinstance(result, str):
                return result
            capped.append(result)  # that user reached the cap meanwhile: pass over them
            if len(capped) > MAX_CAPPED_USERS:
                return None

    async def _claim_once(
        self,
        types: tuple[str, ...],
        worker_id: str,
        lease: str,
        max_running_per_user: int,
        capped: list[str],
    ) -> ClaimResult | str | None:
        """The claim, or the id of a user found at the cap on recounting, or None."""
        async with self._transaction() as conn:
            if types:
                row = await conn.fetchrow(
                    CLAIM_TYPES_SQL, capped, max_running_per_user, list(types)
                )
            else:
                row = await conn.fetchrow(CLAIM_ANY_SQL, capped, max_running_per_user)
            if row is None:
                return None
            if max_running_per_user > 0:
                user_id: str = row["user_id"]
                await conn.execute(_CAP_LOCK, _CAP_LOCK_KEY, user_id)
                if await conn.fetchval(_COUNT_RUNNING, user_id) >= max_running_per_user:
                    return user_id
            key: uuid.UUID = row["id"]
            change = claim_change(job_from_row(row), worker_id=worker_id, lease=lease)
            result = await self._try_change(conn, update_statement(key, change), change)
            # The row is locked by this transaction and was claimable: the UPDATE matched.
            assert result is not None, "a locked, claimable job refused its claim"
            data = await conn.fetchval("SELECT data FROM job_checkpoints WHERE job_id = $1", key)
            return ClaimResult(
                job=result.job.record, lease=lease, checkpoint=data, events=result.events
            )

    async def update_progress(self, job_id: str, write: ProgressWrite) -> ChangeResult:
        """Grouped with concurrent reports of other jobs when batching is on."""
        key = _job_key(job_id)
        if key is None:
            raise NotFound()
        if self._progress is not None:
            result = await self._progress.submit(key, job_id, write)
            if result is not None:
                return result
        return await super().update_progress(job_id, write)

    async def heartbeat(self, job_id: str, lease: str) -> bool:
        key = _job_key(job_id)
        if key is None:
            raise NotFound()
        if self._heartbeats is not None:
            return await self._heartbeats.submit(key, lease)
        async with self._connection() as conn:
            pause_requested = await conn.fetchval(HEARTBEAT_SQL, key, lease)
            if pause_requested is not None:
                return bool(pause_requested)
            state = await conn.fetchval("SELECT state FROM jobs WHERE id = $1", key)
        if state is None:
            raise NotFound()
        # A lease once lost never comes back, so this answer cannot be stale.
        raise LeaseLost(details={"state": str(state), "job_id": job_id})

    # -- reads -------------------------------------------------------------------------------

    async def get(self, job_id: str) -> StoredJob | None:
        key = _job_key(job_id)
        if key is None:
            return None
        async with self._connection() as conn:
            row = await conn.fetchrow(_SELECT_JOB, key)
        return job_from_row(row) if row is not None else None

    async def read_stream(self, job_id: str, after_seq: int) -> StreamRead | None:
        key = _job_key(job_id)
        if key is None:
            return None
        # One statement, one snapshot: the events are exactly those up to the job's seq.
        async with self._connection() as conn:
            row = await conn.fetchrow(_READ_STREAM, key, after_seq)
        if row is None:
            return None
        job = job_from_row(row)
        return StreamRead(job=job, events=_events_from_arrays(job.record, row))

    async def get_checkpoint(self, job_id: str) -> Checkpoint | None:
        key = _job_key(job_id)
        if key is None:
            return None
        async with self._connection() as conn:
            row = await conn.fetchrow(_SELECT_CHECKPOINT, key)
        if row is None or row["data"] is None:
            return None
        job = job_from_row(row)
        if job.checkpoint is None:
            return None
        return Checkpoint(info=job.checkpoint, data=row["data"])

    async def list_jobs(self, where: JobFilter, *, limit: int, after: PageCursor | None) -> Page:
        statement = list_statement(where, limit=limit, after=after)
        async with self._connection() as conn:
            rows = await conn.fetch(statement.sql, *statement.args)
        records = [job_from_row(row).record for row in rows]
        page = records[:limit]
        more = len(records) > limit
        cursor = PageCursor(created_at=page[-1].created_at, id=page[-1].id) if more else None
        return Page(items=tuple(page), next_cursor=cursor)

    async def list_audit(self, job_id: str) -> list[AuditEntry]:
        key = _job_key(job_id)
        if key is None:
            return []
        async with self._connection() as conn:
            rows = await conn.fetch(_SELECT_AUDIT, key)
        return [
            AuditEntry(action=r["action"], actor=r["actor"], at=r["at"], details=r["details"])
            for r in rows
        ]

    async def count_by_state(self, user_id: str | None) -> dict[JobState, int]:
        async with self._connection() as conn:
            if user_id is None:
                rows = await conn.fetch(_COUNT_ALL)
            else:
                rows = await conn.fetch(_COUNT_USER, user_id)
        counts = dict.fromkeys(JobState, 0)
        counts.update({JobState(r["state"]): r["n"] for r in rows})
        return counts

    async def count_by_state_and_type(self) -> dict[tuple[JobState, str], int]:
        async with self._connection() as conn:
            rows = await conn.fetch(_COUNT_BY_STATE_AND_TYPE)
        return {(JobState(r["state"]), r["type"]): r["n"] for r in rows}

    async def find_stale(self, stale_after_s: float, *, limit: int) -> list[StoredJob]:
        async with self._connection() as conn:
            rows = await conn.fetch(FIND_STALE_SQL, float(stale_after_s), limit)
        return [job_from_row(row) for row in rows]

    async def due_types(self, within_s: float) -> list[str]:
        async with self._connection() as conn:
            rows = await conn.fetch(DUE_TYPES_SQL, float(within_s))
        return [row["type"] for row in rows]

    async def find_timed_out(self, *, limit: int) -> list[StoredJob]:
        async with self._connection() as conn:
            rows = await conn.fetch(FIND_TIMED_OUT_SQL, limit)
        return [job_from_row(row) for row in rows]

    async def delete(self, job_id: str) -> StoredJob:
        key = _job_key(job_id)
        if key is None:
            raise NotFound()
        async with self._transaction() as conn:
            row = await conn.fetchrow(_DELETE_JOB, key)
            if row is not None:
                return job_from_row(row)
            state = await conn.fetchval("SELECT state FROM jobs WHERE id = $1", key)
        if state is None:
            raise NotFound()
        raise InvalidTransition(
            f"cannot delete a job that is {state}", details={"state": state, "action": "delete"}
        )

    async def delete_finished(self, older_than_s: float, *, limit: int) -> list[StoredJob]:
        async with self._transaction() as conn:
            rows = await conn.fetch(DELETE_FINISHED_SQL, float(older_than_s), limit)
        deleted = [job_from_row(row) for row in rows]
        # DELETE … RETURNING has no order: the longest-finished first, as documented.
        deleted.sort(
            key=lambda job: (finished_at(job.record) or job.record.updated_at, job.record.id)
        )
        return deleted

    async def ping(self) -> None:
        async with self._connection(acquire_timeout=self._ping_timeout) as conn:
            await conn.fetchval("SELECT 1", timeout=self._ping_timeout)


__all__ = [
    "CLAIM_ANY_SQL",
    "CLAIM_TYPES_SQL",
    "DELETE_FINISHED_SQL",
    "FIND_STALE_SQL",
    "FIND_TIMED_OUT_SQL",
    "HEARTBEAT_SQL",
    "OUTAGE_ERRORS",
    "PostgresJobStore",
    "job_from_row",
    "unavailable_on_outage",
]
