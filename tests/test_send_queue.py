"""The lean send queue behind every Engine.IO client: asyncio.Queue's behaviour as Engine.IO
uses it, and nothing held while it is idle."""

from __future__ import annotations

import asyncio
import tracemalloc

import pytest

from server.realtime.send_queue import SendQueue


async def test_items_come_out_in_order_and_a_getter_waits_for_the_next() -> None:
    queue = SendQueue()
    for item in ("a", "b"):
        await queue.put(item)
    assert (queue.qsize(), queue.empty()) == (2, False)
    assert [await queue.get(), queue.get_nowait()] == ["a", "b"]
    assert (queue.qsize(), queue.empty()) == (0, True)
    with pytest.raises(asyncio.QueueEmpty):
        queue.get_nowait()
    waiting = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    assert not waiting.done()
    queue.put_nowait("c")
    assert await asyncio.wait_for(waiting, 1.0) == "c"


async def test_a_getter_that_times_out_takes_nothing_and_the_next_gets_the_item() -> None:
    queue = SendQueue()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(queue.get(), 0.01)
    second = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    queue.put_nowait("x")
    assert await asyncio.wait_for(second, 1.0) == "x"


async def test_a_getter_cancelled_after_its_wake_up_passes_it_on() -> None:
    queue = SendQueue()
    first = asyncio.create_task(queue.get())
    second = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    queue.put_nowait("only")  # wakes the first getter...
    first.cancel()  # ...which is cancelled before it runs
    assert await asyncio.wait_for(second, 1.0) == "only"
    assert first.cancelled()


async def test_join_waits_until_every_item_is_marked_done() -> None:
    queue = SendQueue()
    await queue.join()  # nothing put: returns at once
    queue.put_nowait(1)
    queue.put_nowait(2)
    joined = asyncio.create_task(queue.join())
    queue.get_nowait()
    queue.task_done()
    await asyncio.sleep(0)
    assert not joined.done()
    queue.get_nowait()
    queue.task_done()
    await asyncio.wait_for(joined, 1.0)
    with pytest.raises(ValueError, match="too many"):
        queue.task_done()


async def test_an_idle_queue_holds_only_its_slots_even_after_traffic() -> None:
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        queues = [SendQueue() for _ in range(1000)]
        for queue in queues:
            queue.put_nowait("packet")
            queue.get_nowait()
            queue.task_done()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    # An asyncio.Queue is about 3 KB (four deques of 64 slots); this one its object alone.
    assert grown / len(queues) < 200, grown / len(queues)
