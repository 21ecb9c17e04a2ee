"""Coalesce concurrent progress reports of different jobs into one statement on Postgres.

Why: progress is the chattiest write after heartbeats, and each report on its own costs a pool
checkout, a transaction of two statements (the conditional UPDATE, then the event INSERT with
the backlog trim) and a commit. Reports arriving within a few milliseconds of each other can
share one statement and one commit without changing what any caller is told; this is what
the heartbeat batch (:mod:`server.store.postgres.heartbeat_batch`) does for heartbeats.

How: group commit, as for heartbeats (:mod:`server.store.postgres.write_batch`, the machinery
both store batchers share): a report that finds no batch being written is written at once,
with the reports of the same event-loop turn, so a quiet server adds no delay; reports that
arrive while a batch is being written make up the next one, written as soon as it is done.
No report waits on a timer; the batch grows with the time a write takes (its commit waits
for the WAL flush), and the batcher holds at most one pooled connection. One statement
(:func:`batch_progress_sql`):

* ``UPDATE jobs … FROM unnest(…)``, each row fenced as the single report is (running, same
  lease, progress not going down), moving ``seq`` by one for reports that append an event;
* ``INSERT`` of those events at the seq each row's UPDATE reserved;
* ``DELETE`` of the events that fall out of each job's backlog.

It runs outside a transaction, so it has committed when its rows come back; only then is a
caller answered, with the same :class:`~server.store.progress.ProgressResult` the unbatched
path gives (its event, not the job: the statement returns only what the event needs). A
report whose row did not match is judged on the job as it is now by
:func:`server.store.rules.refusal`, the function both stores use, so the errors are the
unbatched ones; when the job has changed since and the report now applies, the caller
applies it unbatched. A job reported twice in one batch (possible only across web
instances: the repository holds a per-job lock around each report) is written in rounds,
in arrival order, one report per job each. Per-job event order is the repository's: it
publishes a job's events under that lock, after the write committed.
"""

from __future__ import annotations

import uuid
from typing import Final, NamedTuple

import asyncpg

from jobspine_shared.events import EventType
from jobspine_shared.models import JobEvent
from server.store.model import JobChange
from server.store.postgres.batch_answers import RowDecoder, answer_refused, rounds_by_key
from server.store.postgres.fencing import PROGRESS_SHAPE, fixed_fence
from server.store.postgres.queries import ASYNC_COMMIT
from server.store.postgres.write_batch import (
    DEFAULT_MAX_BATCH,
    Connection,
    ConnectionFactory,
    Waiter,
    WriteBatcher,
)
from server.store.progress import ProgressResult, ProgressWrite, progress_change

_PROGRESS: Final = EventType.PROGRESS.value
_HELD: Final = ProgressResult(events=())


def batch_progress_sql(*, events: bool = True) -> str:
    """The batch statement, returning each changed job's position in the batch (``n``) and
    what its event needs: ``user_id``, ``epoch``, the new ``seq`` and ``store_now``. Not the
    whole row: no caller uses the job (:class:`~server.store.progress.ProgressResult`), and
    fetching and decoding its columns cost the web process more than the rest of a report.

    ``events=False``: the statement of a round of held reports only (none appends an event):
    no event to insert or trim (no ``$7``), only ``n`` returned, and it commits without
    waiting for the WAL flush (:data:`~server.store.postgres.queries.ASYNC_COMMIT`): no client
    has been told about a held value, the trailing event that tells them is a write of its
    own, so a crash of Postgres could lose only a stored progress that a later report or the
    trailing event writes again."""
    fence = fixed_fence(PROGRESS_SHAPE, table="j", lease="b.lease", progress_at_most="b.progress")
    returned = "j.id, j.user_id, j.epoch, j.seq, b.with_event, b.data AS event_data, b.n"
    update = f"""WITH b AS (
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::float8[], $4::text[], $5::bool[],
                         $6::jsonb[]) WITH ORDINALITY AS b(id, lease, progress, step, with_event,
                                                          data, n)
), changed AS (
    UPDATE jobs AS j
    SET progress = b.progress, step = b.step, last_heartbeat_at = now(), updated_at = now(),
        seq = j.seq + b.with_event::int
    FROM b
    WHERE j.id = b.id AND {fence}{"" if events else " AND " + ASYNC_COMMIT}
    RETURNING {returned if events else "b.n"}
)"""
    if not events:
        return f"{update}\nSELECT n FROM changed\n"
    return f"""{update}, appended AS (
    INSERT INTO job_events (job_id, seq, type, at, data)
    SELECT id, seq, '{_PROGRESS}', now(), event_data FROM changed WHERE with_event
), trimmed AS (
    DELETE FROM job_events AS e USING changed AS c
    WHERE c.with_event AND c.seq > $7 AND e.job_id = c.id AND e.seq <= c.seq - $7
)
SELECT n, user_id, epoch, seq, now() AS store_now FROM changed
"""


class _Report(NamedTuple):
    key: uuid.UUID
    job_id: str
    write: ProgressWrite


_Caller = Waiter[_Report, "ProgressResult | None"]


def _job_of(report: _Report) -> uuid.UUID:
    return report.key


def _change_of(report: _Report) -> JobChange:
    return progress_change(report.write)


class ProgressBatcher(WriteBatcher[_Report, "ProgressResult | None"]):
    """Writes concurrent progress reports as one statement per batch (module docstring).

    ``flushes`` (batches written), ``rounds`` (statements of reports written: one a round,
    more than one a batch only when a batch holds a job twice), ``statements`` (everything
    sent) and ``deadlock_retries`` are plain counters, for tests and benchmarks.
    """

    task_name = "progress-batch"
    lost_message = "the progress report was not recorded"

    def __init__(
        self,
        connection: ConnectionFactory,
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
        decode: RowDecoder,
        select_jobs_sql: str,
        backlog_size: int,
    ) -> None:
        """``select_jobs_sql``: the jobs of ``$1::uuid[]`` with ``store_now``, to name why
        reports were refused; ``decode``: such a row as the store's job."""
        super().__init__(connection, max_batch=max_batch)
        self._sql = batch_progress_sql()
        self._held_sql = batch_progress_sql(events=False)
        self._decode = decode
        self._select_jobs = select_jobs_sql
        self._backlog_size = backlog_size
        self.rounds = 0

    async def submit(
        self, key: uuid.UUID, job_id: str, write: ProgressWrite
    ) -> ProgressResult | None:
        """Write the report with the others of its batch; its result once committed, or None
        when the caller should apply it on its own (the job changed under the batch). Raises
        what the unbatched report would."""
        return await self._submit(_Report(key, job_id, write))

    async def _write(self, conn: Connection, live: list[_Caller]) -> None:
        for round_ in rounds_by_key(live, _job_of):
            await self._write_round(conn, round_)

    async def _write_round(self, conn: Connection, waiters: list[_Caller]) -> None:
        live = [w for w in waiters if w.waiting]
        if not live:
            return
        self.rounds += 1
        reports = [w.item for w in live]
        args: list[object] = [
            [r.key for r in reports],
            [r.write.lease for r in reports],
            [float(r.write.progress) for r in reports],
            [r.write.step for r in reports],
            [r.write.with_event for r in reports],
            [r.write.event_data for r in reports],
        ]
        sql = self._held_sql  # no event among them (held reports): no $7, async commit
        if any(r.write.with_event for r in reports):
            sql = self._sql
            args.append(self._backlog_size)
        rows = await self.fetch_retrying(conn, sql, *args, what="progress report")
        answered: set[int] = set()
        for row in rows:
            waiter = live[row["n"] - 1]
            answered.add(row["n"] - 1)
            waiter.answer(self._result(row, waiter.item))
        refused = [w for i, w in enumerate(live) if i not in answered]
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

    def _result(self, row: asyncpg.Record, report: _Report) -> ProgressResult:
        if not report.write.with_event:
            return _HELD
        event = JobEvent(
            job_id=report.job_id,
            user_id=row["user_id"],
            seq=row["seq"],
            epoch=row["epoch"],
            type=EventType.PROGRESS,
            at=row["store_now"],
            data=report.write.event_data,
        )
        return ProgressResult(events=(event,))


__all__ = ["ProgressBatcher", "batch_progress_sql"]
