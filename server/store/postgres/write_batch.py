"""The machinery the store's write batchers share: group commit, one flush task, every caller
answered.

A :class:`WriteBatcher` writes concurrent callers' items (each one item and a future) as one
statement per batch (:meth:`WriteBatcher._write`, the statement each batcher runs).
:mod:`~server.store.postgres.heartbeat_batch` and :mod:`~server.store.postgres.progress_batch`
are its two users; their docstrings say why each batches.

How a batch forms (group commit, no timer): a caller that finds the batcher idle starts its
flush task, which takes every caller that has joined by the time it holds a connection (the
callers of the same event-loop turn at least) and writes them at once. Callers that arrive
while a batch is being written join the next one, which is written as soon as the one in
flight is done. So a lone caller waits for nothing but its own write, and under load the
batch grows with the time a write takes, not with a window: no caller waits on a timer, and
each batcher has at most one write (one pooled connection) in flight.

What every batcher gets from here:

* the flush is one task owned by the batcher while it has callers (it ends when none is
  left, the next caller starts another), never a caller's: a caller that gives up (its
  request is cancelled) abandons only its own future, and the write the others wait for goes
  on;
* a batch holds at most ``max_batch`` callers; the rest wait for the next;
* whatever happens in a flush, every caller is answered: an error fails the callers not yet
  answered, each with its own copy (:func:`own_copy`), and a flush that ended without
  answering someone (cancelled, say) tells them ``Unavailable``;
* :meth:`~WriteBatcher.fetch_retrying` runs a batch statement again when Postgres aborted it
  to break a deadlock, with a random backoff, and counts what it sent.
"""

from __future__ import annotations

import asyncio
import logging
import random
from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, ClassVar, Final, Generic, TypeAlias, TypeVar

import asyncpg

from server.errors import JobspineError, Unavailable
from server.store.postgres.pool import Connection

log = logging.getLogger(__name__)

#: A pooled connection for one flush; outages leave it as ``Unavailable``.
ConnectionFactory: TypeAlias = "Callable[[], AbstractAsyncContextManager[Connection]]"

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


ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")


def own_copy(error: BaseException) -> BaseException:
    """The same domain error as a new object per caller: one exception object raised in many
    tasks would collect every task's traceback, and a batch may have hundreds of callers."""
    if isinstance(error, JobspineError):
        copy = type(error)(error.message, details=error.details)
        copy.__cause__ = error.__cause__
        return copy
    return error  # a bug, not an answer: rare enough to share


class Waiter(Generic[ItemT, ResultT]):
    """One caller: what it asked to write and the future its answer goes to."""

    __slots__ = ("future", "item")

    def __init__(self, item: ItemT, future: asyncio.Future[ResultT]) -> None:
        self.item = item
        self.future = future

    @property
    def waiting(self) -> bool:
        """Not answered yet, and not given up."""
        return not self.future.done()

    def answer(self, result: ResultT) -> None:
        if not self.future.done():  # a caller that gave up is not answered
            self.future.set_result(result)

    def refuse(self, error: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(error)


def refuse_all(waiters: list[Waiter[ItemT, ResultT]], error: BaseException) -> None:
    """Fail every caller of ``waiters`` not answered yet, each with its own copy of ``error``."""
    for waiter in waiters:
        if waiter.waiting:
            waiter.refuse(own_copy(error))


class WriteBatcher(ABC, Generic[ItemT, ResultT]):
    """Runs concurrent callers' writes as one write per batch; see the module docstring.

    A subclass says how a batch is written (:meth:`_write`). ``flushes`` (batches taken and
    written, or refused for want of a connection), ``statements`` (everything sent) and
    ``deadlock_retries`` are plain counters, for tests and benchmarks.
    """

    #: Names the flush task.
    task_name: ClassVar[str]
    #: What a caller whose flush ended without answering it is told (as ``Unavailable``).
    lost_message: ClassVar[str]

    def __init__(
        self, connection: ConnectionFactory, *, max_batch: int = DEFAULT_MAX_BATCH
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._connection = connection
        self.max_batch = max_batch
        #: Callers not yet taken into a batch, in arrival order.
        self._joined: list[Waiter[ItemT, ResultT]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._closed = False
        self.flushes = 0
        self.statements = 0
        self.deadlock_retries = 0

    @property
    def busy(self) -> int:
        """1 while the flush task runs (writing, or about to take the next batch), else 0."""
        return 0 if self._flusher is None else 1

    @property
    def waiting(self) -> int:
        """Callers that joined and are not yet in a batch being written."""
        return len(self._joined)

    async def _submit(self, item: ItemT) -> ResultT:
        """Join the next batch with ``item`` (start the flush task when none runs) and return
        what its write answers; raise what it refuses. Returns only after the write has
        committed."""
        if self._closed:
            raise Unavailable("the job store is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[ResultT] = loop.create_future()
        self._joined.append(Waiter(item, future))
        if self._flusher is None:
            self._flusher = loop.create_task(self._run(), name=self.task_name)
            self._flusher.add_done_callback(self._flush_task_done)
        try:
            return await future
        except asyncio.CancelledError:
            # Cancelled just as the answer arrived: retrieve it, or asyncio logs it as lost.
            if future.done() and not future.cancelled():
                future.exception()
            raise

    async def flush(self) -> None:
        """Return once every caller that joined so far is answered (for shutdown paths, and
        tests that must not sleep)."""
        if self._flusher is not None:
            await asyncio.wait({self._flusher})  # (not the task: giving up must not cancel it)

    async def close(self) -> None:
        """Write what has joined and wait for it, so no caller is left unanswered and no task
        outlives the batcher. Called before the pool closes, so pending writes still happen;
        later ones are refused."""
        self._closed = True
        # A flush ends by itself: the pool's acquire and command timeouts bound it.
        await self.flush()

    def _take(self) -> list[Waiter[ItemT, ResultT]]:
        """The next batch: up to ``max_batch`` callers in arrival order, those still waiting."""
        taken, self._joined = self._joined[: self.max_batch], self._joined[self.max_batch :]
        return [w for w in taken if w.waiting]

    async def _run(self) -> None:
        """Write batch after batch until no caller is left; whatever happens, every caller is
        answered."""
        try:
            while self._joined:
                await self._flush_one()
        finally:
            self._end_flush()

    def _flush_task_done(self, task: asyncio.Task[None]) -> None:
        """A flush task cancelled before its first step never ran :meth:`_run` (nor its
        ``finally``): its callers are answered here, and the next caller starts a flush."""
        if self._flusher is task:
            self._end_flush()

    def _end_flush(self) -> None:
        self._flusher = None
        joined, self._joined = self._joined, []  # left only when the flush was cancelled
        refuse_all(joined, Unavailable(self.lost_message))

    async def _flush_one(self) -> None:
        """Take a connection, then the callers that have joined by then, and write them (one
        flush); when no connection comes, the callers it was for are refused."""
        live: list[Waiter[ItemT, ResultT]] = []
        try:
            async with self._connection() as conn:
                live = self._take()
                if live:  # else every caller gave up meanwhile: no one waits for it
                    self.flushes += 1
                    await self._write(conn, live)
        except Exception as exc:
            if not live:  # no connection: the callers it was taken for
                live = self._take()
                self.flushes += 1 if live else 0
            refuse_all(live, exc)
        finally:
            refuse_all(live, Unavailable(self.lost_message))

    @abstractmethod
    async def _write(self, conn: Connection, live: list[Waiter[ItemT, ResultT]]) -> None:
        """Write ``live`` (callers still waiting, in arrival order) on ``conn`` and answer or
        refuse each of them."""

    async def fetch_retrying(
        self, conn: Connection, sql: str, *args: Any, what: str
    ) -> list[asyncpg.Record]:
        """Run a batch statement, again when Postgres aborted it to break a deadlock (it then
        wrote nothing). ``what`` names the batch in the log and the error (``"heartbeat"``)."""
        size = len(args[0])
        for attempt in range(1, MAX_WRITE_ATTEMPTS + 1):
            self.statements += 1
            try:
                return await conn.fetch(sql, *args)
            except asyncpg.DeadlockDetectedError:
                log.info("%s batch of %d deadlocked (attempt %d)", what, size, attempt)
                if attempt == MAX_WRITE_ATTEMPTS:
                    break
                self.deadlock_retries += 1
                await asyncio.sleep(attempt * random.uniform(*RETRY_BACKOFF_S))
        raise Unavailable(f"{what}s kept deadlocking; try again")


__all__ = [
    "DEFAULT_MAX_BATCH",
    "MAX_WRITE_ATTEMPTS",
    "RETRY_BACKOFF_S",
    "Connection",
    "ConnectionFactory",
    "Waiter",
    "WriteBatcher",
    "own_copy",
    "refuse_all",
]
