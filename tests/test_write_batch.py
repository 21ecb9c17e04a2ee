"""The machinery both store batchers share (:mod:`server.store.postgres.write_batch`), on a batcher
whose write is plain Python: who shares a batch (group commit: the callers of one turn, then
whoever joined while a write was in flight, no timer), who is answered what, and that no
task outlives the batcher. What each store batcher writes is tests/test_heartbeat_batch.py's
and tests/test_progress_batch.py's, on Postgres."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import pytest

from server.errors import NotFound, Unavailable
from server.store.postgres.write_batch import Connection, Waiter, WriteBatcher
from tests.support.jobs import wait_until

WITHIN_S = 30.0


async def until(condition: Callable[[], bool]) -> None:
    async def check() -> bool:
        return condition()

    await wait_until(check, within=WITHIN_S)


class Doubler(WriteBatcher[int, int]):
    """Answers ``2 * item``; ``refuse`` items fail with a NotFound shared by the batch, and
    ``ignore`` items are left unanswered by the write. ``connect`` gates the connection each
    flush takes first (``connect_error`` makes it fail), ``release`` each write."""

    task_name = "doubler"
    lost_message = "not doubled"

    def __init__(self, *, max_batch: int = 100, refuse: int = -1, ignore: int = -1) -> None:
        super().__init__(self._connect, max_batch=max_batch)
        self.refuse, self.ignore = refuse, ignore
        self.batches: list[list[int]] = []
        self.connections = 0
        self.connect_error: Exception | None = None
        self.connect = asyncio.Event()
        self.connect.set()
        self.release = asyncio.Event()
        self.release.set()

    @contextlib.asynccontextmanager
    async def _connect(self) -> AsyncIterator[Connection]:
        self.connections += 1
        await self.connect.wait()
        if self.connect_error is not None:
            raise self.connect_error
        yield cast(Connection, None)

    async def submit(self, item: int) -> int:
        return await self._submit(item)

    async def _write(self, conn: Connection, live: list[Waiter[int, int]]) -> None:
        self.batches.append([w.item for w in live])
        await self.release.wait()
        if any(w.item == self.refuse for w in live):
            raise NotFound(details={"batch": len(live)})
        for waiter in live:
            if waiter.item != self.ignore:
                waiter.answer(2 * waiter.item)


def flush_task() -> asyncio.Task[Any]:
    (task,) = [t for t in asyncio.all_tasks() if t.get_name() == Doubler.task_name]
    return task


async def test_callers_of_one_turn_share_one_write_and_each_gets_its_answer() -> None:
    batcher = Doubler()
    assert await asyncio.gather(*(batcher.submit(i) for i in range(5))) == [0, 2, 4, 6, 8]
    assert batcher.batches == [[0, 1, 2, 3, 4]]
    assert batcher.flushes == 1
    await batcher.close()
    assert batcher.busy == 0


async def next_turns(count: int) -> None:
    """Let the event loop run ``count`` turns (each one a callback's round, not a sleep)."""
    loop = asyncio.get_running_loop()
    for _ in range(count):
        turn: asyncio.Future[None] = loop.create_future()
        loop.call_soon(turn.set_result, None)
        await turn


async def test_a_lone_caller_is_written_at_once_without_a_timer() -> None:
    """Nothing waits on the clock: the write has started within three turns of the loop
    (the call joins, the flush task starts, it writes), however little time they took."""
    batcher = Doubler()
    call = asyncio.create_task(batcher.submit(7))
    await next_turns(3)
    assert batcher.batches == [[7]]
    assert await call == 14
    await batcher.close()


async def test_callers_joining_during_a_write_form_the_next_batch_written_right_after() -> None:
    batcher = Doubler()
    batcher.release.clear()
    first = [asyncio.create_task(batcher.submit(i)) for i in range(2)]
    await until(lambda: batcher.batches == [[0, 1]])  # in flight, held by release
    later = [asyncio.create_task(batcher.submit(i)) for i in range(10, 13)]
    await until(lambda: batcher.waiting == 3)
    assert batcher.batches == [[0, 1]]  # one write in flight at a time
    batcher.release.set()
    assert await asyncio.gather(*first, *later) == [0, 2, 20, 22, 24]
    assert batcher.batches == [[0, 1], [10, 11, 12]]
    assert batcher.connections == 2
    await batcher.close()


async def test_a_batch_takes_whoever_joined_while_its_connection_came() -> None:
    batcher = Doubler()
    batcher.connect.clear()
    calls = [asyncio.create_task(batcher.submit(1))]
    await until(lambda: batcher.connections == 1)
    calls += [asyncio.create_task(batcher.submit(i)) for i in (2, 3)]
    await until(lambda: batcher.waiting == 3)
    batcher.connect.set()
    assert await asyncio.gather(*calls) == [2, 4, 6]
    assert batcher.batches == [[1, 2, 3]]
    await batcher.close()


async def test_a_batch_holds_at_most_max_batch_callers_the_rest_go_next() -> None:
    batcher = Doubler(max_batch=3)
    answers = await asyncio.gather(*(batcher.submit(i) for i in range(7)))
    assert answers == [2 * i for i in range(7)]
    assert batcher.batches == [[0, 1, 2], [3, 4, 5], [6]]
    await batcher.close()


async def test_the_flush_task_ends_when_no_one_is_left_and_the_next_caller_starts_one() -> None:
    batcher = Doubler()
    assert await batcher.submit(1) == 2
    await until(lambda: batcher.busy == 0)
    assert not [t for t in asyncio.all_tasks() if t.get_name() == Doubler.task_name]
    assert await batcher.submit(2) == 4
    assert batcher.batches == [[1], [2]]
    await batcher.close()
    assert batcher.busy == 0


async def test_a_failed_write_fails_each_caller_with_its_own_copy_of_the_error() -> None:
    batcher = Doubler(refuse=1)
    errors = await asyncio.gather(*(batcher.submit(i) for i in range(4)), return_exceptions=True)
    assert all(isinstance(e, NotFound) and e.details == {"batch": 4} for e in errors)
    assert len({id(e) for e in errors}) == 4
    assert await batcher.submit(5) == 10  # the batcher keeps working
    await batcher.close()


async def test_no_connection_fails_the_callers_it_was_for_and_the_next_batch_tries_again() -> None:
    batcher = Doubler()
    batcher.connect_error = Unavailable("the database is unavailable")
    errors = await asyncio.gather(*(batcher.submit(i) for i in range(3)), return_exceptions=True)
    assert [type(e) for e in errors] == [Unavailable] * 3
    assert len({id(e) for e in errors}) == 3
    assert (batcher.flushes, batcher.connections, batcher.batches) == (1, 1, [])
    batcher.connect_error = None
    assert await batcher.submit(4) == 8
    await batcher.close()


async def test_a_caller_the_write_left_unanswered_is_told_unavailable() -> None:
    batcher = Doubler(ignore=2)
    answers = await asyncio.wait_for(
        asyncio.gather(*(batcher.submit(i) for i in range(3)), return_exceptions=True), WITHIN_S
    )
    assert answers[:2] == [0, 2]
    assert isinstance(answers[2], Unavailable)
    assert answers[2].message == "not doubled"
    await batcher.close()


async def test_a_caller_giving_up_leaves_the_write_to_the_others() -> None:
    batcher = Doubler()
    batcher.release.clear()
    calls = [asyncio.create_task(batcher.submit(i)) for i in range(3)]
    await until(lambda: len(batcher.batches) == 1)
    calls[0].cancel()
    with pytest.raises(asyncio.CancelledError):
        await calls[0]
    batcher.release.set()
    assert [await c for c in calls[1:]] == [2, 4]
    await batcher.close()


async def test_callers_who_all_gave_up_before_their_batch_was_taken_cause_no_write() -> None:
    batcher = Doubler()
    batcher.connect.clear()
    calls = [asyncio.create_task(batcher.submit(i)) for i in range(2)]
    await until(lambda: batcher.connections == 1)
    for call in calls:
        call.cancel()
    await asyncio.gather(*calls, return_exceptions=True)
    batcher.connect.set()
    await batcher.close()
    assert (batcher.batches, batcher.flushes) == ([], 0)
    assert batcher.busy == 0


async def test_a_cancelled_flush_task_tells_every_caller_unavailable_and_re_raises() -> None:
    batcher = Doubler()
    batcher.release.clear()
    first = asyncio.create_task(batcher.submit(1))
    await until(lambda: batcher.batches == [[1]])
    second = asyncio.create_task(batcher.submit(2))  # joined, not yet taken
    await until(lambda: batcher.waiting == 1)
    task = flush_task()
    task.cancel()
    answers = await asyncio.gather(first, second, return_exceptions=True)
    assert [type(a) for a in answers] == [Unavailable, Unavailable]
    assert task.cancelled()  # the cancellation was not swallowed
    assert batcher.busy == 0
    batcher.release.set()
    assert await batcher.submit(3) == 6  # a later caller starts a new flush
    await batcher.close()


async def test_a_flush_task_cancelled_before_it_ran_still_answers_and_frees_the_batcher() -> None:
    # A task cancelled before its first step never runs its coroutine (nor its finally):
    # the batcher must not go on believing a flush runs, or every later caller waits forever.
    batcher = Doubler()
    call = asyncio.create_task(batcher.submit(1))
    await asyncio.sleep(0)  # (a turn, not a wait: the caller has joined and made the task)
    task = flush_task()
    task.cancel()
    (answer,) = await asyncio.wait_for(asyncio.gather(call, return_exceptions=True), WITHIN_S)
    assert isinstance(answer, Unavailable)
    assert task.cancelled()
    assert batcher.busy == 0
    assert await asyncio.wait_for(batcher.submit(3), WITHIN_S) == 6
    await batcher.close()


async def test_close_writes_what_joined_then_refuses_new_callers_and_leaves_no_task() -> None:
    batcher = Doubler()
    batcher.release.clear()
    calls = [asyncio.create_task(batcher.submit(i)) for i in range(2)]
    await until(lambda: len(batcher.batches) == 1)
    late = asyncio.create_task(batcher.submit(9))
    await until(lambda: batcher.waiting == 1)
    closing = asyncio.create_task(batcher.close())
    batcher.release.set()
    await closing
    assert [await c for c in (*calls, late)] == [0, 2, 18]
    with pytest.raises(Unavailable):
        await batcher.submit(1)
    assert batcher.busy == 0
    assert not [t for t in asyncio.all_tasks() if t.get_name() == Doubler.task_name]


def test_impossible_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        Doubler(max_batch=0)
