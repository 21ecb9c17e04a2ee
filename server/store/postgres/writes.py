"""What one change writes, and the claim.

Every change is race-free without read-modify-write: a single conditional ``UPDATE … WHERE
<the change's conditions> RETURNING`` (the row lock it takes, held until commit, orders
concurrent changes of a job, and Postgres re-checks the conditions on the row a waiting
UPDATE finally gets) appends the events with the seqs it reserved, writes the checkpoint and
the audit entry: in the same statement when the events' data is known beforehand
(:func:`plan_change`, one round trip), else after it in the caller's transaction. When the
UPDATE matches nothing, the job is read to name the reason with
:func:`server.store.rules.refusal`, the same function the memory store uses, so both stores
refuse with the same errors.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Final

import asyncpg
import attrs

from jobspine_shared.models import JobEvent
from server.errors import JobspineError, NotFound
from server.store.base import NewJob
from server.store.claiming import (
    UNCLAIMED_ATTEMPT,
    claim_change,
    first_claim_change,
)
from server.store.model import (
    CLEAR_CHECKPOINT,
    AuditWrite,
    ChangeResult,
    CheckpointWrite,
    ClaimResult,
    EventSpec,
    JobChange,
    StoredJob,
)
from server.store.postgres import queries
from server.store.postgres.clock import ClockBound
from server.store.postgres.pool import Connection
from server.store.postgres.rows import job_from_row
from server.store.postgres.statements import (
    Params,
    Statement,
    change_statement,
    fixed_event_data,
    picked_change_statement,
    update_statement,
)
from server.store.rules import change_events, refusal

#: Users passed over because they reached the cap, at most this many per claim.
MAX_CAPPED_USERS: Final = 8

#: :func:`server.store.claiming.is_first_claim` in SQL, over the chosen job's row.
FIRST_CLAIM_FITS: Final = f"attempt = {UNCLAIMED_ATTEMPT} AND NOT has_checkpoint"


def insert_args(job: NewJob) -> tuple[object, ...]:
    """The values of a job's insert, ``$1``..``$13`` of
    :data:`~server.store.postgres.queries.INSERT_JOB` and ``INSERT_JOB_ALONE``."""
    spec = job.spec
    return (
        uuid.UUID(job.id),
        job.user_id,
        spec.type,
        spec.input,
        job.epoch,
        spec.priority,
        spec.run_at,
        list(spec.tags),
        None if spec.parent_id is None else uuid.UUID(spec.parent_id),
        spec.timeout_s,
        attrs.asdict(spec.retry),
        spec.idempotency_key,
        spec.correlation_id,
    )


async def insert_alone(
    conn: Connection, job: NewJob, event: EventSpec, at: datetime, clock: ClockBound
) -> ChangeResult | None:
    """A create without an idempotency key as one statement, no BEGIN, no COMMIT: the job
    and its first event, rendered from the record as the memory store renders it
    (:meth:`~server.store.base.NewJob.record`,
    :func:`~server.store.rules.change_events`), stamped ``at``, a time ``clock`` says
    Postgres's clock has reached. None when nothing was written because it had not (the
    caller then creates in a transaction)."""
    stored = StoredJob(record=job.record(at))
    events = change_events(stored, (event,), at)
    (created,) = events
    row = await conn.fetchrow(
        queries.INSERT_JOB_ALONE,
        *insert_args(job),
        at,
        created.seq,
        created.type.value,
        created.data,
    )
    assert row is not None  # (the statement's last SELECT has no FROM: always one row)
    if not row["inserted"]:
        clock.refused(row["store_now"])
        return None
    clock.answered(row["store_now"])
    return ChangeResult(job=stored, events=events)


async def insert_job(
    conn: Connection,
    job: NewJob,
    event: EventSpec,
    idempotency_ttl_s: float,
    *,
    backlog_size: int,
    clock: ClockBound,
) -> ChangeResult:
    """In ``conn``'s transaction: insert ``job`` with its first event, stamped by Postgres;
    with a live idempotency key, the job holding it instead (``existing``)."""
    if job.spec.idempotency_key is not None:
        taken = await conn.fetchval(
            queries.TAKE_KEY,
            job.user_id,
            job.spec.idempotency_key,
            uuid.UUID(job.id),
            float(idempotency_ttl_s),
        )
        if taken is None:
            holder = await conn.fetchrow(queries.KEY_HOLDER, job.user_id, job.spec.idempotency_key)
            assert holder is not None  # the key row's job is deleted with it
            return ChangeResult(job=job_from_row(holder), events=(), existing=True)
    row = await conn.fetchrow(queries.INSERT_JOB, *insert_args(job))
    assert row is not None
    clock.answered(row["store_now"])
    stored = job_from_row(row)
    events = change_events(stored, (event,), row["store_now"])
    await append_events(conn, events, backlog_size=backlog_size)
    return ChangeResult(job=stored, events=events)


@attrs.frozen
class ChangeWrite:
    """How one change is written. ``alone``: ``statement`` writes all of it
    (:func:`~server.store.postgres.statements.change_statement`: its events' data is known
    beforehand), no transaction needed; otherwise it is the conditional UPDATE, followed by
    the events, checkpoint and audit entry in the caller's transaction (events whose data is
    computed from the changed job, such as ``job:created``'s record)."""

    change: JobChange
    statement: Statement
    alone: bool


def plan_change(
    key: uuid.UUID, change: JobChange, *, backlog_size: int, read_checkpoint: bool = False
) -> ChangeWrite:
    event_data = fixed_event_data(change)
    if event_data is None:
        return ChangeWrite(change, update_statement(key, change), alone=False)
    statement = change_statement(
        key, change, event_data, backlog_size=backlog_size, read_checkpoint=read_checkpoint
    )
    return ChangeWrite(change, statement, alone=True)


async def try_change(
    conn: Connection, write: ChangeWrite, *, backlog_size: int
) -> ChangeResult | None:
    """Run the change's statement; when it matched, write what goes with it (unless the
    statement wrote it all). None when it matched nothing."""
    row = await conn.fetchrow(write.statement.sql, *write.statement.args)
    if row is None:
        return None
    return await _written(conn, row, write, backlog_size=backlog_size)


async def _written(
    conn: Connection, row: asyncpg.Record, write: ChangeWrite, *, backlog_size: int
) -> ChangeResult:
    change = write.change
    job = job_from_row(row)
    at: datetime = row["store_now"]
    events = change_events(job, change.events, at)
    if not write.alone:
        await append_events(conn, events, backlog_size=backlog_size)
        await _write_checkpoint(conn, row["id"], change.checkpoint)
        if change.audit is not None:
            await _write_audit(conn, row["id"], change.audit, at)
    return ChangeResult(job=job, events=events)


async def refusal_now(conn: Connection, key: uuid.UUID, change: JobChange) -> JobspineError | None:
    """Why the UPDATE matched nothing, judged on the job as it is now by the shared rules;
    None when it has changed since and the change now applies."""
    row = await conn.fetchrow(queries.SELECT_JOB, key)
    if row is None:
        return NotFound()
    return refusal(job_from_row(row), change, row["store_now"])


async def append_events(conn: Connection, events: Sequence[JobEvent], *, backlog_size: int) -> None:
    if not events:
        return
    latest = events[-1].seq
    await conn.execute(
        queries.APPEND_EVENTS,
        uuid.UUID(events[0].job_id),
        latest - backlog_size,
        events[0].at,
        [e.seq for e in events],
        [e.type.value for e in events],
        [e.data for e in events],
    )


async def _write_checkpoint(
    conn: Connection, key: uuid.UUID, checkpoint: CheckpointWrite | str | None
) -> None:
    if isinstance(checkpoint, CheckpointWrite):
        await conn.execute(queries.UPSERT_CHECKPOINT, key, checkpoint.data)
    elif checkpoint == CLEAR_CHECKPOINT:
        await conn.execute(queries.DELETE_CHECKPOINT, key)


async def _write_audit(conn: Connection, key: uuid.UUID, audit: AuditWrite, at: datetime) -> None:
    await conn.execute(
        queries.INSERT_AUDIT, key, audit.action, audit.actor, at, dict(audit.details)
    )


@attrs.frozen(kw_only=True)
class ClaimCall:
    """A worker's claim: of which types (any when empty), by whom, under which lease."""

    types: tuple[str, ...]
    worker_id: str
    lease: str
    backlog_size: int


class FirstClaimMiss(enum.Enum):
    """Why :func:`first_claim` claimed nothing."""

    NOTHING_CLAIMABLE = "no job is claimable"
    NOT_FIRST = "the job that comes first was claimed before or holds a checkpoint"


async def first_claim(conn: Connection, call: ClaimCall) -> ClaimResult | FirstClaimMiss:
    """Without a cap on running jobs: choose the claimable job that comes first and, when
    :func:`~server.store.claiming.is_first_claim` holds for it (the common case), claim it
    with :func:`~server.store.claiming.first_claim_change`, in one statement on its own (no
    BEGIN, no COMMIT; the row lock lasts the statement). Otherwise nothing is written and
    :func:`claim_once` claims, with the change made for the job as it is then."""

    def pick(params: Params) -> str:
        types = params.add(list(call.types)) if call.types else None
        return queries.claim_pick("id, attempt, has_checkpoint", types=types, capped=None, cap=None)

    change = first_claim_change(worker_id=call.worker_id, lease=call.lease)
    event_data = fixed_event_data(change)
    assert event_data is not None, "a first claim's events are fixed"
    statement = picked_change_statement(
        pick, FIRST_CLAIM_FITS, change, event_data, backlog_size=call.backlog_size
    )
    write = ChangeWrite(change, statement, alone=True)
    row = await conn.fetchrow(statement.sql, *statement.args)
    if row is None:
        return FirstClaimMiss.NOTHING_CLAIMABLE
    if row["id"] is None:
        return FirstClaimMiss.NOT_FIRST
    result = await _written(conn, row, write, backlog_size=call.backlog_size)
    return ClaimResult(
        job=result.job.record, lease=call.lease, checkpoint=None, events=result.events
    )


async def claim_once(
    conn: Connection, call: ClaimCall, *, max_running_per_user: int, capped: list[str]
) -> ClaimResult | str | None:
    """In ``conn``'s transaction: the claim, or the id of a user found at the cap on
    recounting (to pass over next time), or None when nothing is claimable."""
    if call.types:
        row = await conn.fetchrow(
            queries.CLAIM_TYPES_SQL, capped, max_running_per_user, list(call.types)
        )
    else:
        row = await conn.fetchrow(queries.CLAIM_ANY_SQL, capped, max_running_per_user)
    if row is None:
        return None
    if max_running_per_user > 0:
        user_id: str = row["user_id"]
        await conn.execute(queries.CAP_LOCK, queries.CAP_LOCK_KEY, user_id)
        if await conn.fetchval(queries.COUNT_RUNNING, user_id) >= max_running_per_user:
            return user_id
    key: uuid.UUID = row["id"]
    change = claim_change(job_from_row(row), worker_id=call.worker_id, lease=call.lease)
    write = plan_change(key, change, backlog_size=call.backlog_size, read_checkpoint=True)
    assert write.alone, "a claim's event data is known before its UPDATE"
    changed = await conn.fetchrow(write.statement.sql, *write.statement.args)
    # The row is locked by this transaction and was claimable: the UPDATE matched.
    assert changed is not None, "a locked, claimable job refused its claim"
    result = await _written(conn, changed, write, backlog_size=call.backlog_size)
    # The data only of a checkpoint the job holds: a restart's one-statement clear reads
    # its statement's snapshot, so a checkpoint row written after that snapshot (by an
    # attempt that ran and ended meanwhile) could outlive the clear. The job's own flag,
    # cleared by the same UPDATE under the row lock, says there is none.
    held = changed["checkpoint_data"] if result.job.checkpoint is not None else None
    return ClaimResult(
        job=result.job.record, lease=call.lease, checkpoint=held, events=result.events
    )


__all__ = [
    "FIRST_CLAIM_FITS",
    "MAX_CAPPED_USERS",
    "ChangeWrite",
    "ClaimCall",
    "FirstClaimMiss",
    "append_events",
    "claim_once",
    "first_claim",
    "insert_alone",
    "insert_args",
    "insert_job",
    "plan_change",
    "refusal_now",
    "try_change",
]
