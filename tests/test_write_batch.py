"""The machinery both store batchers share (:mod:`server.store.postgres.write_batch`), on a batcher
whose write is plain Python: who shares a batch, who is answered what, and that no task
outlives the batcher. What each store batcher writes is tests/test_heartbeat_batch.py's and
tests/test_progress_batch.py's, on Postgres."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import pytest

from server.errors import NotFound, Unavailable
from server.store.postgres.write_batch import Batch, BatchWindow, Connection, Waiter, WriteBatcher
from tests.support.jobs import wait_until

WITHIN_S = 30.0


async def until(condition: Callable[[], bool]) -> None:
    async def check() -> bool:
        return condition()

    await wait_until(check, within=WITHIN_S)


def no_connection() -> AbstractAsyncContextManager[Connection]:
    raise AssertionError("this batcher writes without a connection")


class Doubler(WriteBatcher[int, int]):
    """Answers ``2 * item``; ``refuse`` items fail with a NotFound shared by the batch, and
    ``ignore`` items are left unanswered by the write. The window stays open until the batch
    is full or flushed; ``release`` makes each write wait for it."""

    task_name = "doubler"
    lost_message = "not doubled"

    def __init__(self, *, max_batch: int = 100, refuse: int = -1, ignore: int = -1) -> None:
        super().__init__(no_connection, BatchWindow(max_delay_s=3600, max_batch=max_batch))
        self.refuse, self.ignore = refuse, ignore
        self.batches: list[list[int]] = []
        self.release = asyncio.Event()
        self.release.set()

    async def submit(self, item: int) -> int:
        return await self._submit(item)

    async def _collect(self, batch: Batch[int, int]) -> None:
        await batch.full.wait()

    async def _write(self, batch: Batch[int, int], live: list[Waiter[int, int]]) -> None:
        self.flushes += 1
        self.batches.append([w.item for w in live])
        await self.release.wait()
        if any(w.item == self.refuse for w in live):
            raise NotFound(details={"batch": len(live)})
        for waiter in live:
            if waiter.item != self.ignore:
                waiter.answer(2 * waiter.item)


async def test_callers_of_one_window_share_one_write_and_each_gets_its_answer() -> None:
    batcher = Doubler()
    calls = [asyncio.create_task(batcher.submit(i)) for i in range(5)]
    await until(lambda: batcher.waiting == 5)
    await batcher.flush()
    assert [await c for c in calls] == [0, 2, 4, 6, 8]
    assert batcher.batches == [[0, 1, 2, 3, 4]]
    await batcher.close()
    assert batcher.busy == 0


async def test_a_full_batch_is_written_and_the_next_caller_opens_another() -> None:
    batcher = Doubler(max_batch=3)
    first = [asyncio.create_task(batcher.submit(i)) for i in range(3)]
    assert await asyncio.wait_for(asyncio.gather(*first), WITHIN_S) == [0, 2, 4]
    late = asyncio.create_task(batcher.submit(10))
    await until(lambda: batcher.waiting == 1)
    await batcher.close()  # writes what is collecting
    assert await late == 20
    assert batcher.batches == [[0, 1, 2], [10]]
    assert batcher.busy == 0


async def test_a_failed_write_fails_each_caller_with_its_own_copy_of_the_error() -> None:
    batcher = Doubler(refuse=1)
    calls = [asyncio.create_task(batcher.submit(i)) for i in range(4)]
    await until(lambda: batcher.waiting == 4)
    await batcher.flush()
    errors = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(e, NotFound) and e.details == {"batch": 4} for e in errors)
    assert len({id(e) for e in errors}) == 4
    await batcher.close()


async def test_a_caller_the_write_left_unanswered_is_told_unavailable() -> None:
    batcher = Doubler(ignore=2)
    calls = [asyncio.create_task(batcher.submit(i)) for i in range(3)]
    await until(lambda: batcher.waiting == 3)
    await batcher.flush()
    answers = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), WITHIN_S)
    assert answers[:2] == [0, 2]
    assert isinstance(answers[2], Unavailable)
    assert answers[2].message == "not doubled"
    await batcher.close()


async def test_a_caller_giving_up_leaves_the_write_to_the_others() -> None:
    batcher = Doubler()
    batcher.release.clear()
    calls = [asyncio.create_task(batcher.submit(i)) for i in range(3)]
    await until(lambda: batcher.waiting == 3)
    flushed = asyncio.create_task(batcher.flush())
    await until(lambda: len(batcher.batches) == 1)
    calls[0].cancel()
    with pytest.raises(asyncio.CancelledError):
        await calls[0]
    batcher.release.set()
    await flushed
    assert [await c for c in calls[1:]] == [2, 4]
    await batcher.close()


async def test_callers_who_all_gave_up_during_the_window_cause_no_write() -> None:
    batcher = Doubler()
    calls = [asyncio.create_task(batcher.submit(i)) for i in range(2)]
    await until(lambda: batcher.waiting == 2)
    for call in calls:
        call.cancel()
    await asyncio.gather(*calls, return_exceptions=True)
    await batcher.close()
    assert batcher.batches == []
    assert batcher.busy == 0


async def test_a_closed_batcher_refuses_new_callers() -> None:
    batcher = Doubler()
    await batcher.close()
    with pytest.raises(Unavailable):
        await batcher.submit(1)
    assert batcher.busy == 0


def test_impossible_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        Doubler(max_batch=0)
