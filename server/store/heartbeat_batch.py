"""Coalesce concurrent heartbeats into one fenced ``UPDATE … FROM unnest(…)``.

Why: every running job's worker heartbeats every few seconds, so with many jobs heartbeats
are most of the store's writes. One statement each costs a pool checkout, a round trip and a
commit (a WAL flush) per heartbeat, and the pool's ten connections cap how many run at once.
A heartbeat carries no data but "still alive", so heartbeats arriving within a few
milliseconds of each other can share one statement and one commit without changing what
any caller is told.

How: the first caller of a batch opens a window of ``max_delay_s``; callers arriving within
it join; the batch is flushed when the window closes, when ``max_batch`` callers have joined,
or when no one has joined for ``max_delay_s / IDLE_FRACTION``: callers that come together
(the acks of one batch bring their workers' next heartbeats back together) then wait a
fraction of the window, not all of it, while a steady stream still fills whole windows
(docs/performance.md: 50 heartbeats in flight, 10k/s with a fixed 2 ms window, about twice that
with the idle close).
The flush is a task owned by the batcher, never by a caller: a caller that gives up (its
request is cancelled) abandons only its own future, and the write the others wait for goes
on. Each caller is answered only after the statement that wrote its heartbeat has committed
(it runs outside a transaction, so it has when its rows come back).

What a caller is told is what :meth:`server.store.postgres.PostgresJobStore.heartbeat` says
on its own: ``pause_requested`` when the job is running under that lease; otherwise one
follow-up read of the refused ids tells :class:`NotFound` from :class:`LeaseLost`. A
connection failure fails the whole batch with :class:`Unavailable`; the store's connection
factory (``PostgresJobStore._connection``, which applies ``unavailable_on_outage``) is the
one place where outages become that error, for batched heartbeats as for everything else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Final, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from server.errors import JobspineError, LeaseLost, NotFound, Unavailable

log = logging.getLogger(__name__)

#: What the pool hands out (a string: asyncpg classes are not subscriptable at runtime).
Connection: TypeAlias = "PoolConnectionProxy[asyncpg.Record]"
#: A pooled connection for one flush; outages leave it as ``Unavailable``.
ConnectionFactory: TypeAlias = "Callable[[], AbstractAsyncContextManager[Connection]]"

DEFAULT_MAX_DELAY_S: Final = 0.002
#: A batch closes early once no caller has joined for its window divided by this.
IDLE_FRACTION: Final = 10
DEFAULT_MAX_BATCH: Final = 500

#: Two flushes (or two web instances) writing overlapping jobs can lock their rows in
#: different orders and deadlock: the plan decides the order (a nested loop over the sorted
#: ids on big tables, the table's physical order under a hash join on mid-sized ones), so
#: sorting the ids is not enough. Postgres then aborts one statement, which wrote nothing
#: and is safe to run again. Locking the rows in id order first (``SELECT … ORDER BY id FOR
#: NO KEY UPDATE``) would prevent it, at the price of one more WAL record on every row of
#: every batch; a rare retry is cheaper. More than a few in a row would mean something else.
MAX_WRITE_ATTEMPTS: Final = 3
#: Before a retry: long enough for the transaction that survived the deadlock to take the
#: rows first (an immediate retry can take them again and deadlock once more), random so
#: two aborted batches do not collide again. Small next to the ``deadlock_timeout`` (1 s by
#: default) the deadlock has already cost.
RETRY_BACKOFF_S: Final = (0.01, 0.05)

#: The batch's heartbeats, each fenced by its own lease as the single-job statement is. It
#: writes only ``last_heartbeat_at``, which no index contains, so every row update is HOT.
#: ``lease`` comes back so that an answer is matched to its (job, lease) pair: a batch may
#: hold one job under several leases (a superseded worker's among them), of which at most
#: the job's current one matches.
BATCH_HEARTBEAT_SQL: Final = """
UPDATE jobs AS j SET last_heartbeat_at = now()
FROM unnest($1::uuid[], $2::text[]) AS b(id, lease)
WHERE j.id = b.id AND j.state = 'running' AND j.lease = b.lease
RETURNING j.id, j.lease, j.pause_requested
"""

#: Why some heartbeats matched nothing: a missing job, or one no longer running under that
#: lease. A lease once lost never comes back, so reading after the UPDATE cannot be stale.
REFUSED_STATES_SQL: Final = "SELECT id, state FROM jobs WHERE id = ANY($1::uuid[])"


class _Waiter:
    """One caller: its heartbeat and the future its answer goes to."""

    __slots__ = ("future", "job_id", "lease")

    def __init__(self, job_id: uuid.UUID, lease: str, future: asyncio.Future[bool]) -> None:
        self.job_id = job_id
        self.lease = lease
        self.future = future

    def answer(self, pause_requested: bool) -> None:
        if not self.future.done():  # a caller that gave up is not answered
            self.future.set_result(pause_requested)

    def refuse(self, error: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(error)


class _Batch:
    """Callers collected in one window; ``full`` ends the window early; ``task`` waits out
    the window and writes the batch."""

    __slots__ = ("full", "task", "waiters")

    def __init__(self) -> None:
        self.waiters: list[_Waiter] = []
        self.full = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def refuse_all(self, error: BaseException) -> None:
        for waiter in self.waiters:
            waiter.refuse(_own_copy(error))


def _own_copy(error: BaseException) -> BaseException:
    """The same domain error as a new object per caller: one exception object raised in many
    tasks would collect every task's traceback, and a batch may have hundreds of callers."""
    if isinstance(error, JobspineError):
        copy = type(error)(error.message, details=error.details)
        copy.__cause__ = error.__cause__
        return copy
    return error  # a bug, not an answer: rare enough to share


class HeartbeatBatcher:
    """Runs concurrent heartbeats as one statement per batch; see the module docstring.

    ``flushes`` (batches written), ``statements`` (everything sent, follow-up reads and
    retries included) and ``deadlock_retries`` are plain counters, for tests and benchmarks.
    """

    def __init__(
        self,
        connection: ConnectionFactory,
        *,
        max_delay_s: float = DEFAULT_MAX_DELAY_S,
        max_batch: int = DEFAULT_MAX_BATCH,
        idle_s: float | None = None,
    ) -> None:
        """``idle_s``: close a batch once no one joined for this long (default
        ``max_delay_s / IDLE_FRACTION``)."""
        if max_delay_s < 0:
            raise ValueError("max_delay_s must not be negative")
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        if idle_s is not None and idle_s <= 0:
            raise ValueError("idle_s must be positive")
        self._connection = connection
        self.max_delay_s = max_delay_s
        self.max_batch = max_batch
        self.idle_s = max_delay_s / IDLE_FRACTION if idle_s is None else idle_s
        self._open: _Batch | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self.flushes = 0
        self.statements = 0
        self.deadlock_retries = 0

    @property
    def busy(self) -> int:
        """Batches collecting or being written (each one a task of this batcher)."""
        return len(self._tasks)

    @property
    def waiting(self) -> int:
        """Callers in the batch still collecting (the one a new caller would join)."""
        return len(self._open.waiters) if self._open is not None else 0

    async def submit(self, job_id: uuid.UUID, lease: str) -> bool:
        """Record a heartbeat of ``job_id`` under ``lease`` with the others of its batch and
        return ``pause_requested``; raise ``NotFound``, ``LeaseLost`` or ``Unavailable`` as a
        single heartbeat would. Returns only after the write has committed."""
        if self._closed:
            raise Unavailable("the job store is closed")
        loop = asyncio.get_running_loop()
        batch = self._open
        if batch is None:
            batch = self._open = _Batch()
            batch.task = loop.create_task(self._run(batch), name="heartbeat-batch")
            self._tasks.add(batch.task)
            batch.task.add_done_callback(self._tasks.discard)
        future: asyncio.Future[bool] = loop.create_future()
        batch.waiters.append(_Waiter(job_id, lease, future))
        if len(batch.waiters) >= self.max_batch:
            self._seal(batch)
        try:
            return await future
        except asyncio.CancelledError:
            # Cancelled just as the answer arrived: retrieve it, or asyncio logs it as lost.
            if future.done() and not future.cancelled():
                future.exception()
            raise

    async def flush(self) -> None:
        """Write the collecting batch now, without waiting out its window, and return once
        its callers are answered (for shutdown paths, and tests that must not sleep)."""
        batch = self._open
        if batch is None:
            return
        self._seal(batch)
        if batch.task is not None:
            await asyncio.wait({batch.task})  # (not the task: giving up must not cancel it)

    async def close(self) -> None:
        """Write the collecting batch now and wait for every batch in flight, so no caller is
        left unanswered and no task outlives the batcher. Called before the pool closes, so
        pending heartbeats are still written; later heartbeats are refused."""
        self._closed = True
        if self._open is not None:
            self._seal(self._open)
        if self._tasks:
            # A flush ends by itself: the pool's acquire and command timeouts bound it.
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _seal(self, batch: _Batch) -> None:
        """No one joins ``batch`` any more; its flush starts at once."""
        if self._open is batch:
            self._open = None
        batch.full.set()

    async def _run(self, batch: _Batch) -> None:
        """Wait out the window, then write the batch and answer its callers; whatever
        happens, every caller is answered (a cancelled flush answers ``Unavailable``)."""
        try:
            await self._collect(batch)
            self._seal(batch)
            await self._flush(batch)
        except Exception as exc:
            batch.refuse_all(exc)
        finally:
            self._seal(batch)
            batch.refuse_all(Unavailable("the heartbeat was not recorded"))

    async def _collect(self, batch: _Batch) -> None:
        """Return when the batch's window closes: full, out of time, or idle (no one joined
        for ``idle_s``)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_delay_s
        idle_s = self.idle_s
        while not batch.full.is_set():
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            joined = len(batch.waiters)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(idle_s, remaining)):
                    await batch.full.wait()
            if len(batch.waiters) == joined:
                return

    async def _flush(self, batch: _Batch) -> None:
        live = [w for w in batch.waiters if not w.future.done()]
        if not live:
            return  # every caller gave up during the window: nothing anyone waits for
        # Duplicates answered once each; sorted so overlapping batches tend to lock their
        # rows in the same order (the plan decides; a deadlock is retried, see _write).
        pairs = sorted({(w.job_id, w.lease) for w in live})
        self.flushes += 1
        async with self._connection() as conn:
            rows = await self._write(conn, [p[0] for p in pairs], [p[1] for p in pairs])
            written = {(r["id"], r["lease"]): bool(r["pause_requested"]) for r in rows}
            refused: list[_Waiter] = []
            for waiter in live:
                pause_requested = written.get((waiter.job_id, waiter.lease))
                if pause_requested is None:
                    refused.append(waiter)
                else:
                    waiter.answer(pause_requested)  # committed: autocommit statement
            if not refused:
                return
            self.statements += 1
            found = await conn.fetch(REFUSED_STATES_SQL, sorted({w.job_id for w in refused}))
        states = {r["id"]: str(r["state"]) for r in found}
        for waiter in refused:
            state = states.get(waiter.job_id)
            if state is None:
                waiter.refuse(NotFound())
            else:
                waiter.refuse(LeaseLost(details={"state": state, "job_id": str(waiter.job_id)}))

    async def _write(
        self, conn: Connection, ids: list[uuid.UUID], leases: list[str]
    ) -> list[asyncpg.Record]:
        """Run the batch statement, again when Postgres aborted it to break a deadlock."""
        for attempt in range(1, MAX_WRITE_ATTEMPTS + 1):
            self.statements += 1
            try:
                return await conn.fetch(BATCH_HEARTBEAT_SQL, ids, leases)
            except asyncpg.DeadlockDetectedError:
                log.info("heartbeat batch of %d deadlocked (attempt %d)", len(ids), attempt)
                if attempt == MAX_WRITE_ATTEMPTS:
                    break
                self.deadlock_retries += 1
                await asyncio.sleep(attempt * random.uniform(*RETRY_BACKOFF_S))
        raise Unavailable("heartbeats kept deadlocking; try again")


__all__ = [
    "BATCH_HEARTBEAT_SQL",
    "DEFAULT_MAX_BATCH",
    "DEFAULT_MAX_DELAY_S",
    "REFUSED_STATES_SQL",
    "HeartbeatBatcher",
]
