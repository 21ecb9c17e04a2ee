"""Coalesce concurrent checkpoints of different jobs into one statement on Postgres.

Why: a worker's checkpoint is a change of its own (the data upserted, the job's checkpoint
columns, the ``job:checkpoint`` event with the trailing progress event riding along), one
statement with a synchronous commit each (:func:`~server.store.postgres.statements.
change_statement`). On the peer workload that is the largest statement after the progress
batch: 4 a job. Checkpoints arriving while another is being written can share one statement
and one commit (one WAL flush) without changing what any caller is told.

How: group commit (:mod:`server.store.postgres.write_batch`), as for progress reports: a
checkpoint that finds no batch being written is written at once, with those of the same
event-loop turn; those arriving meanwhile make up the next batch. Which changes go this way:
:func:`batchable`, the shape of :meth:`server.service.worker_calls.WorkerCalls.checkpoint`
(fenced by its lease alone, progress not going down when it names one, no state change, a
checkpoint written, events whose data is known beforehand); any other change is written on
its own, as before. One statement (:func:`batch_checkpoint_sql`), the one-statement change
with its values taken per row from ``unnest``:

* ``UPDATE jobs … FROM unnest(…)``, each row fenced as the change is (the same
  :func:`~server.store.postgres.fencing.fence_sql`), setting what
  :func:`~server.store.postgres.statements.update_statement` sets for such a change and
  moving ``seq`` by the row's number of events;
* ``INSERT`` of the events at the seqs each row's UPDATE reserved (those the backlog would
  drop at once left out), ``DELETE`` of those that fall out of each job's backlog;
* the checkpoint's data upserted into ``job_checkpoints``.

A checkpoint alone in its batch is sent as the unbatched statement is
(:func:`~server.store.postgres.writes.plan_change`): with one row, the batch statement costs
Postgres more than the change's own. On the peer workload most batches hold one or two
checkpoints (docs/performance.md).

It runs outside a transaction and commits synchronously (the ack of a checkpoint says it is
stored), so it has committed when its rows come back; only then is a caller answered, with
the :class:`~server.store.model.ChangeResult` the unbatched path gives. A caller whose row
did not match is judged on the job as it is now (:mod:`~server.store.postgres.batch_answers`):
its own error, or None (applied unbatched) when the job changed since and the change now
applies. A job twice in one batch (only across web instances) is written in rounds.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any, Final, NamedTuple

import asyncpg

from server.store.model import (
    NOW,
    RUNNING_ONLY,
    ChangeResult,
    CheckpointWrite,
    JobChange,
)
from server.store.postgres.batch_answers import RowDecoder, answer_refused, rounds_by_key
from server.store.postgres.fencing import fixed_fence
from server.store.postgres.statements import fixed_event_data
from server.store.postgres.write_batch import (
    DEFAULT_MAX_BATCH,
    Connection,
    ConnectionFactory,
    Waiter,
    WriteBatcher,
)
from server.store.postgres.writes import plan_change, try_change
from server.store.rules import change_events

#: The fields a batched checkpoint may set: the heartbeat (always, to the store's clock) and
#: the progress the call names, if it does.
_FIELDS: Final = frozenset({"last_heartbeat_at", "progress"})

#: The checkpoint data one batch statement carries at most (its callers' ``size_bytes``),
#: so that many large checkpoints (up to ``MAX_CHECKPOINT_BYTES`` each, 1 MiB by default)
#: are not sent as one statement: a batch is written in statements of this size or less
#: (one checkpoint over it alone).
DEFAULT_MAX_BATCH_BYTES: Final = 1 << 20

#: The fence of every batched checkpoint (:func:`batchable`), its values from columns.
_SHAPE: Final = JobChange(action="checkpoint", lease="", progress_at_most=0.0)


def batchable(change: JobChange) -> CheckpointWrite | None:
    """The checkpoint ``change`` writes when the batch statement writes exactly what
    :func:`~server.store.postgres.statements.change_statement` writes for it (its events'
    data known beforehand among the rest); else None."""
    checkpoint = change.checkpoint
    fields = change.fields
    if not (
        isinstance(checkpoint, CheckpointWrite)
        and change.lease is not None
        and change.from_states == RUNNING_ONLY
        and change.to_state is None
        and not change.require_pause_requested
        and change.stale_after_s is None
        and change.new_lease is None
        and change.audit is None
        and not change.increments
        and change.events
        and fixed_event_data(change) is not None
        and fields.get("last_heartbeat_at") is NOW
        and _FIELDS.issuperset(fields)
        and isinstance(fields.get("progress", 0.0), float | int)
    ):
        return None
    return checkpoint


def batch_checkpoint_sql(columns: Sequence[str]) -> str:
    """The batch statement, returning ``columns`` of each changed job (new values), its
    ``store_now`` and its position in the batch (``n``). Per row: ``$1`` id, ``$2`` lease,
    ``$3`` progress at most (NULL: none), ``$4`` progress set (NULL: the job's), ``$5`` the
    checkpoint's own progress (NULL: the job's as the change leaves it), ``$6`` size,
    ``$7`` keys (a JSON array, as text: asyncpg would take a list of lists for a
    two-dimensional array), ``$8`` data, ``$9`` number of events; per event: ``$10``
    its row's ``n``, ``$11`` its place in the row's events (from 1), ``$12`` type, ``$13``
    data; ``$14`` the backlog size."""
    returned = ", ".join(f"j.{c}" for c in columns)
    fence = fixed_fence(
        _SHAPE,
        table="j",
        lease="b.lease",
        progress_at_most="coalesce(b.progress_at_most, j.progress)",
    )
    return f"""WITH b AS (
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::float8[], $4::float8[], $5::float8[],
                         $6::int4[], $7::text[], $8::jsonb[], $9::int8[])
        WITH ORDINALITY AS b(id, lease, progress_at_most, progress, checkpoint_progress, size,
                             keys, data, event_count, n)
), changed AS (
    UPDATE jobs AS j
    SET updated_at = now(), last_heartbeat_at = now(),
        progress = coalesce(b.progress, j.progress),
        seq = j.seq + b.event_count,
        has_checkpoint = true, checkpoint_at = now(), checkpoint_size = b.size,
        checkpoint_progress = coalesce(b.checkpoint_progress, b.progress, j.progress),
        checkpoint_keys = ARRAY(
            SELECT k.name
            FROM jsonb_array_elements_text(b.keys::jsonb) WITH ORDINALITY AS k(name, i)
            ORDER BY k.i
        )
    FROM b
    WHERE j.id = b.id AND {fence}
    RETURNING {returned}, b.event_count, b.n
), appended AS (
    INSERT INTO job_events (job_id, seq, type, at, data)
    SELECT c.id, c.seq - c.event_count + e.k, e.type, now(), e.data
    FROM changed AS c
    JOIN unnest($10::int8[], $11::int8[], $12::text[], $13::jsonb[]) AS e(n, k, type, data)
        ON e.n = c.n
    WHERE e.k > c.event_count - $14
), trimmed AS (
    DELETE FROM job_events AS t USING changed AS c
    WHERE c.seq > $14 AND t.job_id = c.id AND t.seq <= c.seq - $14
), saved AS (
    INSERT INTO job_checkpoints (job_id, data)
    SELECT c.id, b.data FROM changed AS c JOIN b ON b.n = c.n
    ON CONFLICT (job_id) DO UPDATE SET data = EXCLUDED.data
)
SELECT changed.*, now() AS store_now FROM changed
"""


class _Checkpoint(NamedTuple):
    key: uuid.UUID
    change: JobChange
    write: CheckpointWrite
    event_data: list[dict[str, Any]]


_Caller = Waiter[_Checkpoint, "ChangeResult | None"]


def _job_of(item: _Checkpoint) -> uuid.UUID:
    return item.key


def _change_of(item: _Checkpoint) -> JobChange:
    return item.change


def _float_or_none(value: float | None) -> float | None:
    return None if value is None else float(value)


class CheckpointBatcher(WriteBatcher[_Checkpoint, "ChangeResult | None"]):
    """Writes concurrent checkpoints as one statement per batch (module docstring).

    ``flushes`` (batches written), ``rounds`` (statements of checkpoints written: more
    than one a batch only when a batch holds a job twice or more data than
    ``max_batch_bytes``), ``statements`` (everything sent)
    and ``deadlock_retries`` are plain counters, for tests and benchmarks.
    """

    task_name = "checkpoint-batch"
    lost_message = "the checkpoint was not recorded"

    def __init__(
        self,
        connection: ConnectionFactory,
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
        columns: Sequence[str],
        decode: RowDecoder,
        select_jobs_sql: str,
        backlog_size: int,
    ) -> None:
        """``select_jobs_sql``: the jobs of ``$1::uuid[]`` with ``store_now``, to name why
        checkpoints were refused."""
        super().__init__(connection, max_batch=max_batch)
        self._sql = batch_checkpoint_sql(columns)
        self._decode = decode
        self._select_jobs = select_jobs_sql
        self._backlog_size = backlog_size
        self.max_batch_bytes = max_batch_bytes
        self.rounds = 0

    async def submit(self, key: uuid.UUID, change: JobChange) -> ChangeResult | None:
        """Write ``change`` (:func:`batchable`) with the others of its batch; its result
        once committed, or None when the caller should apply it on its own (the job changed
        under the batch). Raises what the unbatched change would."""
        write = batchable(change)
        event_data = fixed_event_data(change)
        if write is None or event_data is None:
            raise ValueError(f"{change.action}: not a change the checkpoint batch writes")
        return await self._submit(_Checkpoint(key, change, write, event_data))

    async def _write(self, conn: Connection, live: list[_Caller]) -> None:
        for round_ in rounds_by_key(live, _job_of):
            for part in self._by_size(round_):
                await self._write_round(conn, part)

    def _by_size(self, callers: list[_Caller]) -> list[list[_Caller]]:
        """``callers`` in order, cut so that each part's data stays within
        ``max_batch_bytes`` (a checkpoint over it is a part of its own)."""
        parts: list[list[_Caller]] = [[]]
        size = 0
        for caller in callers:
            grown = size + caller.item.write.size_bytes
            if parts[-1] and grown > self.max_batch_bytes:
                parts.append([])
                grown = caller.item.write.size_bytes
            parts[-1].append(caller)
            size = grown
        return parts

    async def _write_round(self, conn: Connection, waiters: list[_Caller]) -> None:
        live = [w for w in waiters if w.waiting]
        if not live:
            return
        self.rounds += 1
        if len(live) == 1:
            refused = await self._write_alone(conn, live[0])
        else:
            refused = await self._write_many(conn, live)
        if not refused:
            return
        self.statements += 1
        await answer_refused(
            conn,
            refused,
            key=_job_of,
            change=_change_of,
            select_jobs_sql=self._select_jobs,
            decode=self._decode,
        )

    async def _write_alone(self, conn: Connection, caller: _Caller) -> list[_Caller]:
        """A checkpoint alone in its round: the change's own statement
        (:func:`~server.store.postgres.writes.plan_change`, what the unbatched path sends),
        which costs Postgres less than the batch statement with one row. The callers it
        refused."""
        item = caller.item
        write = plan_change(item.key, item.change, backlog_size=self._backlog_size)
        self.statements += 1
        result = await try_change(conn, write, backlog_size=self._backlog_size)
        if result is None:
            return [caller]
        caller.answer(result)
        return []

    async def _write_many(self, conn: Connection, live: list[_Caller]) -> list[_Caller]:
        """The batch statement for ``live`` (one caller of each job); the callers it
        refused."""
        items = [w.item for w in live]
        event_rows: list[int] = []
        event_places: list[int] = []
        event_types: list[str] = []
        event_datas: list[dict[str, Any]] = []
        for n, item in enumerate(items, start=1):
            pairs = zip(item.change.events, item.event_data, strict=True)
            for place, (spec, data) in enumerate(pairs, start=1):
                event_rows.append(n)
                event_places.append(place)
                event_types.append(spec.type.value)
                event_datas.append(data)
        rows = await self.fetch_retrying(
            conn,
            self._sql,
            [i.key for i in items],
            [i.change.lease for i in items],
            [_float_or_none(i.change.progress_at_most) for i in items],
            [_float_or_none(i.change.fields.get("progress")) for i in items],
            [_float_or_none(i.write.progress) for i in items],
            [i.write.size_bytes for i in items],
            [json.dumps(i.write.keys) for i in items],
            [i.write.data for i in items],
            [len(i.change.events) for i in items],
            event_rows,
            event_places,
            event_types,
            event_datas,
            self._backlog_size,
            what="checkpoint",
        )
        answered: set[int] = set()
        for row in rows:
            index = row["n"] - 1
            answered.add(index)
            live[index].answer(self._result(row, live[index].item.change))
        return [w for i, w in enumerate(live) if i not in answered]

    def _result(self, row: asyncpg.Record, change: JobChange) -> ChangeResult:
        job = self._decode(row)
        return ChangeResult(job=job, events=change_events(job, change.events, row["store_now"]))


__all__ = ["DEFAULT_MAX_BATCH_BYTES", "CheckpointBatcher", "batch_checkpoint_sql", "batchable"]
