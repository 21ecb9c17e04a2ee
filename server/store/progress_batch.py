"""Coalesce concurrent progress reports of different jobs into one statement on Postgres.

Why: progress is the chattiest write after heartbeats, and each report on its own costs a pool
checkout, a transaction of two statements (the conditional UPDATE, then the event INSERT with
the backlog trim) and a commit. Reports arriving within a few milliseconds of each other can
share one statement and one commit without changing what any caller is told; this is what
the heartbeat batch (:mod:`server.store.heartbeat_batch`) does for heartbeats.

How: as for heartbeats, the first report of a batch opens a window of ``max_delay_s``;
reports arriving within it join; the window closes early at ``max_batch`` reports. Unlike
heartbeats, whose latency nobody watches, a progress report is on the way to every
subscriber's screen: when no batch is being written, the window is skipped (reports of the
same event-loop turn still share the batch), so a quiet server adds no delay, and under
load, while a batch is being written, the next one collects for the window. The flush
is a task of the batcher, never of a caller. One statement (:data:`BATCH_PROGRESS_SQL`):

* ``UPDATE jobs … FROM unnest(…)``, each row fenced as the single report is (running, same
  lease, progress not going down), moving ``seq`` by one for reports that append an event;
* ``INSERT`` of those events at the seq each row's UPDATE reserved;
* ``DELETE`` of the events that fall out of each job's backlog.

It runs outside a transaction, so it has committed when its rows come back; only then is a
caller answered, with the same :class:`~server.store.model.ChangeResult` the unbatched path
gives. A report whose row did not match is judged on the job as it is now by
:func:`server.store.rules.refusal`, the function both stores use, so the errors are the
unbatched ones; when the job has changed since and the report now applies, the caller
applies it unbatched. A job reported twice in one batch (possible only across web
instances: the repository holds a per-job lock around each report) is written in rounds,
in arrival order, one report per job each. Per-job event order is the repository's: it
publishes a job's events under that lock, after the write committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Final, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from jobspine_shared.events import EventType
from jobspine_shared.models import JobEvent
from server.errors import JobspineError, NotFound, Unavailable
from server.store.model import ChangeResult, StoredJob
from server.store.progress import ProgressWrite, progress_change
from server.store.rules import refusal

log = logging.getLogger(__name__)

Connection: TypeAlias = "PoolConnectionProxy[asyncpg.Record]"
ConnectionFactory: TypeAlias = "Callable[[], AbstractAsyncContextManager[Connection]]"
#: A ``jobs`` row (with ``store_now``) as the store's job.
RowDecoder: TypeAlias = "Callable[[asyncpg.Record], StoredJob]"

DEFAULT_MAX_DELAY_S: Final = 0.002
DEFAULT_MAX_BATCH: Final = 500
MAX_WRITE_ATTEMPTS: Final = 3
RETRY_BACKOFF_S: Final = (0.01, 0.05)

_PROGRESS: Final = EventType.PROGRESS.value


def batch_progress_sql(columns: Sequence[str]) -> str:
    """The batch statement, returning ``columns`` of each changed job (new values), its
    ``store_now`` and its position in the batch (``n``)."""
    returned = ", ".join(f"j.{c}" for c in columns)
    return f"""
WITH b AS (
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::float8[], $4::text[], $5::bool[],
                         $6::jsonb[]) WITH ORDINALITY AS b(id, lease, progress, step, with_event,
                                                          data, n)
), changed AS (
    UPDATE jobs AS j
    SET progress = b.progress, step = b.step, last_heartbeat_at = now(), updated_at = now(),
        seq = j.seq + b.with_event::int
    FROM b
    WHERE j.id = b.id AND j.state = 'running' AND j.lease = b.lease AND j.progress <= b.progress
    RETURNING {returned}, b.with_event, b.data AS event_data, b.n
), appended AS (
    INSERT INTO job_events (job_id, seq, type, at, data)
    SELECT id, seq, '{_PROGRESS}', now(), event_data FROM changed WHERE with_event
), trimmed AS (
    DELETE FROM job_events AS e USING changed AS c
    WHERE c.with_event AND e.job_id = c.id AND e.seq <= c.seq - $7
)
SELECT changed.*, now() AS store_now FROM changed
"""


class _Waiter:
    __slots__ = ("future", "job_id", "key", "write")

    def __init__(
        self,
        key: uuid.UUID,
        job_id: str,
        write: ProgressWrite,
        future: asyncio.Future[ChangeResult | None],
    ) -> None:
        self.key, self.job_id, self.write, self.future = key, job_id, write, future

    def answer(self, result: ChangeResult | None) -> None:
        if not self.future.done():
            self.future.set_result(result)

    def refuse(self, error: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(_own_copy(error))


def _own_copy(error: BaseException) -> BaseException:
    """A new error object per caller (one object raised in many tasks collects them all)."""
    if isinstance(error, JobspineError):
        copy = type(error)(error.message, details=error.details)
        copy.__cause__ = error.__cause__
        return copy
    return error


class _Batch:
    __slots__ = ("full", "task", "waiters")

    def __init__(self) -> None:
        self.waiters: list[_Waiter] = []
        self.full = asyncio.Event()
        self.task: asyncio.Task[None] | None = None


def _rounds(waiters: list[_Waiter]) -> list[list[_Waiter]]:
    """Arrival order, at most one report per job in each round."""
    rounds: list[list[_Waiter]] = []
    seen: list[set[uuid.UUID]] = []
    for waiter in waiters:
        index = next((i for i, keys in enumerate(seen) if waiter.key not in keys), len(rounds))
        if index == len(rounds):
            rounds.append([])
            seen.append(set())
        rounds[index].append(waiter)
        seen[index].add(waiter.key)
    return rounds


class ProgressBatcher:
    """Writes concurrent progress reports as one statement per batch (module docstring).

    ``flushes`` (batches written), ``statements`` (everything sent) and ``deadlock_retries``
    are plain counters, for tests and benchmarks.
    """

    def __init__(
        self,
        connection: ConnectionFactory,
        *,
        columns: Sequence[str],
        decode: RowDecoder,
        select_jobs_sql: str,
        backlog_size: int,
        max_delay_s: float = DEFAULT_MAX_DELAY_S,
        max_batch: int = DEFAULT_MAX_BATCH,
    ) -> None:
        """``select_jobs_sql``: the jobs of ``$1::uuid[]`` with ``store_now``, to name why
        reports were refused."""
        if max_delay_s < 0:
            raise ValueError("max_delay_s must not be negative")
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._connection = connection
        self._sql = batch_progress_sql(columns)
        self._decode = decode
        self._select_jobs = select_jobs_sql
        self._backlog_size = backlog_size
        self.max_delay_s = max_delay_s
        self.max_batch = max_batch
        self._open: _Batch | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        #: Batches past their window, being written.
        self._written: set[_Batch] = set()
        self._closed = False
        self.flushes = 0
        self.statements = 0
        self.deadlock_retries = 0

    @property
    def busy(self) -> int:
        """Batches collecting or being written (each one a task of this batcher)."""
        return len(self._tasks)

    @property
    def writing(self) -> int:
        """Batches being written whose callers are not all answered yet (a batch gives its
        connection back after answering: that does not make a new report wait)."""
        return sum(1 for batch in self._written if any(not w.future.done() for w in batch.waiters))

    async def submit(
        self, key: uuid.UUID, job_id: str, write: ProgressWrite
    ) -> ChangeResult | None:
        """Write the report with the others of its batch; its result once committed, or None
        when the caller should apply it on its own (the job changed under the batch). Raises
        what the unbatched report would."""
        if self._closed:
            raise Unavailable("the job store is closed")
        loop = asyncio.get_running_loop()
        batch = self._open
        if batch is None:
            batch = self._open = _Batch()
            batch.task = loop.create_task(self._run(batch), name="progress-batch")
            self._tasks.add(batch.task)
            batch.task.add_done_callback(self._tasks.discard)
        future: asyncio.Future[ChangeResult | None] = loop.create_future()
        batch.waiters.append(_Waiter(key, job_id, write, future))
        if len(batch.waiters) >= self.max_batch:
            self._seal(batch)
        try:
            return await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                future.exception()
            raise

    async def flush(self) -> None:
        """Write the collecting batch now and return once its callers are answered."""
        batch = self._open
        if batch is None:
            return
        self._seal(batch)
        if batch.task is not None:
            await asyncio.wait({batch.task})

    async def close(self) -> None:
        """Write what is collecting, wait for every batch in flight; refuse later reports."""
        self._closed = True
        if self._open is not None:
            self._seal(self._open)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _seal(self, batch: _Batch) -> None:
        if self._open is batch:
            self._open = None
        batch.full.set()

    async def _run(self, batch: _Batch) -> None:
        try:
            if self.writing:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.max_delay_s):
                        await batch.full.wait()
            else:
                await asyncio.sleep(0)  # callers of this turn of the event loop join
            self._seal(batch)
            self._written.add(batch)
            try:
                for round_ in _rounds([w for w in batch.waiters if not w.future.done()]):
                    await self._flush(round_)
            finally:
                self._written.discard(batch)
        except Exception as exc:
            for waiter in batch.waiters:
                waiter.refuse(exc)
        finally:
            self._seal(batch)
            for waiter in batch.waiters:
                waiter.refuse(Unavailable("the progress report was not recorded"))

    async def _flush(self, waiters: list[_Waiter]) -> None:
        live = [w for w in waiters if not w.future.done()]
        if not live:
            return
        self.flushes += 1
        async with self._connection() as conn:
            rows = await self._write(conn, live)
            answered: set[int] = set()
            for row in rows:
                waiter = live[row["n"] - 1]
                answered.add(row["n"] - 1)
                waiter.answer(self._result(row, waiter.write))
            refused = [w for i, w in enumerate(live) if i not in answered]
            if not refused:
                return
            self.statements += 1
            found = await conn.fetch(self._select_jobs, sorted({w.key for w in refused}))
        jobs = {r["id"]: (self._decode(r), r["store_now"]) for r in found}
        for waiter in refused:
            job, now = jobs.get(waiter.key, (None, None))
            if job is None or now is None:
                waiter.refuse(NotFound())
                continue
            error = refusal(job, progress_change(waiter.write), now)
            if error is None:
                waiter.answer(None)  # changed since the batch: the caller applies it alone
            else:
                waiter.refuse(error)

    def _result(self, row: asyncpg.Record, write: ProgressWrite) -> ChangeResult:
        job = self._decode(row)
        if not row["with_event"]:
            return ChangeResult(job=job, events=())
        at: datetime = row["store_now"]
        record = job.record
        event = JobEvent(
            job_id=record.id,
            user_id=record.user_id,
            seq=record.seq,
            epoch=record.epoch,
            type=EventType.PROGRESS,
            at=at,
            data=dict(write.event_data),
        )
        return ChangeResult(job=job, events=(event,))

    async def _write(self, conn: Connection, waiters: list[_Waiter]) -> list[asyncpg.Record]:
        """Run the batch statement, again when Postgres aborted it to break a deadlock (it
        then wrote nothing)."""
        args = (
            [w.key for w in waiters],
            [w.write.lease for w in waiters],
            [float(w.write.progress) for w in waiters],
            [w.write.step for w in waiters],
            [w.write.with_event for w in waiters],
            [w.write.event_data for w in waiters],
            self._backlog_size,
        )
        for attempt in range(1, MAX_WRITE_ATTEMPTS + 1):
            self.statements += 1
            try:
                return await conn.fetch(self._sql, *args)
            except asyncpg.DeadlockDetectedError:
                log.info("progress batch of %d deadlocked (attempt %d)", len(waiters), attempt)
                if attempt == MAX_WRITE_ATTEMPTS:
                    break
                self.deadlock_retries += 1
                await asyncio.sleep(attempt * random.uniform(*RETRY_BACKOFF_S))
        raise Unavailable("progress reports kept deadlocking; try again")


__all__ = ["DEFAULT_MAX_BATCH", "DEFAULT_MAX_DELAY_S", "ProgressBatcher", "batch_progress_sql"]
