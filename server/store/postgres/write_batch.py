"""The machinery the store's write batchers share: callers that wait, windows, one flush task.

A :class:`WriteBatcher` collects concurrent callers (each one item and a future) into a
batch, waits out the batch's window (:meth:`WriteBatcher._collect`, the policy each batcher
chooses), and writes the callers still waiting (:meth:`WriteBatcher._write`, the statement
each batcher runs). :mod:`~server.store.postgres.heartbeat_batch` and
:mod:`~server.store.postgres.progress_batch` are its two users; their docstrings say why
each batches and how its window behaves.

What every batcher gets from here:

* the flush is a task owned by the batcher, never by a caller: a caller that gives up (its
  request is cancelled) abandons only its own future, and the write the others wait for goes
  on;
* a batch is sealed (no one joins any more) when ``max_batch`` callers have joined, when its
  window closes, on :meth:`~WriteBatcher.flush` and on :meth:`~WriteBatcher.close`;
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
import attrs

from server.errors import JobspineError, Unavailable
from server.store.postgres.pool import Connection

log = logging.getLogger(__name__)

#: A pooled connection for one flush; outages leave it as ``Unavailable``.
ConnectionFactory: TypeAlias = "Callable[[], AbstractAsyncContextManager[Connection]]"

DEFAULT_MAX_DELAY_S: Final = 0.002
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


@attrs.frozen
class BatchWindow:
    """How long a batch collects callers, at most, and how many it takes before it is full."""

    max_delay_s: float = attrs.field(default=DEFAULT_MAX_DELAY_S, validator=attrs.validators.ge(0))
    max_batch: int = attrs.field(default=DEFAULT_MAX_BATCH, validator=attrs.validators.ge(1))


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


class Batch(Generic[ItemT, ResultT]):
    """Callers collected in one window; ``full`` ends the window early; ``task`` waits out
    the window and writes the batch."""

    __slots__ = ("full", "task", "waiters")

    def __init__(self) -> None:
        self.waiters: list[Waiter[ItemT, ResultT]] = []
        self.full = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def refuse_all(self, error: BaseException) -> None:
        """Fail every caller not answered yet, each with its own copy of ``error``."""
        for waiter in self.waiters:
            if waiter.waiting:
                waiter.refuse(own_copy(error))


class WriteBatcher(ABC, Generic[ItemT, ResultT]):
    """Runs concurrent callers' writes as one write per batch; see the module docstring.

    A subclass says how a batch's window closes (:meth:`_collect`) and how a batch is
    written (:meth:`_write`). ``flushes`` (batches written, counted by :meth:`_write`),
    ``statements`` (everything sent) and ``deadlock_retries`` are plain counters, for tests
    and benchmarks.
    """

    #: Names the flush tasks.
    task_name: ClassVar[str]
    #: What a caller whose flush ended without answering it is told (as ``Unavailable``).
    lost_message: ClassVar[str]

    def __init__(self, connection: ConnectionFactory, window: BatchWindow) -> None:
        self._connection = connection
        self.max_delay_s = window.max_delay_s
        self.max_batch = window.max_batch
        self._open: Batch[ItemT, ResultT] | None = None
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

    async def _submit(self, item: ItemT) -> ResultT:
        """Join the collecting batch (open one if none is) with ``item`` and return what its
        write answers; raise what it refuses. Returns only after the write has committed."""
        if self._closed:
            raise Unavailable("the job store is closed")
        loop = asyncio.get_running_loop()
        batch = self._open
        if batch is None:
            batch = self._open = Batch()
            batch.task = loop.create_task(self._run(batch), name=self.task_name)
            self._tasks.add(batch.task)
            batch.task.add_done_callback(self._tasks.discard)
        future: asyncio.Future[ResultT] = loop.create_future()
        batch.waiters.append(Waiter(item, future))
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
        pending writes still happen; later ones are refused."""
        self._closed = True
        if self._open is not None:
            self._seal(self._open)
        if self._tasks:
            # A flush ends by itself: the pool's acquire and command timeouts bound it.
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _seal(self, batch: Batch[ItemT, ResultT]) -> None:
        """No one joins ``batch`` any more; its flush starts at once."""
        if self._open is batch:
            self._open = None
        batch.full.set()

    async def _run(self, batch: Batch[ItemT, ResultT]) -> None:
        """Wait out the window, then write the batch's waiting callers; whatever happens,
        every caller is answered."""
        try:
            await self._collect(batch)
            self._seal(batch)
            live = [w for w in batch.waiters if w.waiting]
            if live:  # else every caller gave up during the window: no one waits for it
                await self._write(batch, live)
        except Exception as exc:
            batch.refuse_all(exc)
        finally:
            self._seal(batch)
            batch.refuse_all(Unavailable(self.lost_message))

    @abstractmethod
    async def _collect(self, batch: Batch[ItemT, ResultT]) -> None:
        """Return when ``batch``'s window closes (``batch.full`` is set when it is full or
        flushed)."""

    @abstractmethod
    async def _write(
        self, batch: Batch[ItemT, ResultT], live: list[Waiter[ItemT, ResultT]]
    ) -> None:
        """Write ``live`` (the callers of ``batch`` still waiting, in arrival order) and
        answer or refuse each of them."""

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
    "DEFAULT_MAX_DELAY_S",
    "MAX_WRITE_ATTEMPTS",
    "RETRY_BACKOFF_S",
    "Batch",
    "BatchWindow",
    "Connection",
    "ConnectionFactory",
    "Waiter",
    "WriteBatcher",
    "own_copy",
]
