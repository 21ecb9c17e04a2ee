"""Session ends on one loop timer: each key is told once when the (injected) clock reaches
its deadline; moved and dropped deadlines are not told; churn leaves nothing behind."""

from __future__ import annotations

import asyncio
import logging
import time
import tracemalloc

import pytest

from server.realtime.deadlines import Deadlines, Key


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_keys_are_told_in_deadline_order_once_the_clock_reaches_them() -> None:
    clock, told = Clock(), list[Key]()
    deadlines = Deadlines(told.append, clock=clock)
    deadlines.set(("b", "/"), 1020.0)
    deadlines.set(("a", "/"), 1010.0)
    deadlines.set(("c", "/workers"), 1030.0)
    deadlines.fire_due()
    assert told == []
    clock.now = 1020.0
    deadlines.fire_due()
    assert told == [("a", "/"), ("b", "/")]
    assert len(deadlines) == 1
    clock.now = 2000.0
    deadlines.fire_due()
    deadlines.fire_due()
    assert told == [("a", "/"), ("b", "/"), ("c", "/workers")]
    assert len(deadlines) == 0
    deadlines.close()


async def test_a_moved_deadline_counts_from_its_new_time_and_a_dropped_one_never() -> None:
    clock, told = Clock(), list[Key]()
    deadlines = Deadlines(told.append, clock=clock)
    deadlines.set(("moved", "/"), 1010.0)
    deadlines.set(("moved", "/"), 1050.0)  # auth:refresh
    deadlines.set(("gone", "/"), 1010.0)
    deadlines.discard(("gone", "/"))  # the socket left
    clock.now = 1040.0
    deadlines.fire_due()
    assert told == []
    clock.now = 1050.0
    deadlines.fire_due()
    assert told == [("moved", "/")]
    deadlines.close()


async def test_the_loop_timer_tells_a_key_at_its_deadline() -> None:
    told: asyncio.Future[Key] = asyncio.get_running_loop().create_future()
    deadlines = Deadlines(told.set_result, clock=time.time)
    deadlines.set(("late", "/"), time.time() + 3600)
    deadlines.set(("now", "/"), time.time())  # earlier than the armed alarm: re-armed
    assert await asyncio.wait_for(told, 5.0) == ("now", "/")
    assert len(deadlines) == 1
    deadlines.close()
    assert len(deadlines) == 0


async def test_sockets_that_come_and_go_leave_no_entries_behind() -> None:
    clock = Clock()
    deadlines = Deadlines(lambda key: None, clock=clock)
    keys = [(f"sid-{i}", "/") for i in range(20_000)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for key in keys:
            deadlines.set(key, 5000.0)
            deadlines.discard(key)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # 20,000 stale entries would be over 1 MB; the heap is rebuilt as they pile up.
    assert grown < 64 * 1024, grown
    deadlines.close()


async def test_a_deadline_within_a_millisecond_is_due_now() -> None:
    """The loop's timer may fire that early by the clock (uvloop counts milliseconds)."""
    clock, told = Clock(), list[Key]()
    deadlines = Deadlines(told.append, clock=clock)
    deadlines.set(("soon", "/"), 1000.0005)
    deadlines.set(("later", "/"), 1000.01)
    deadlines.fire_due()
    assert told == [("soon", "/")]
    deadlines.close()


async def test_a_key_whose_telling_raises_does_not_stop_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An ``on_due`` that raises is logged; the keys due after it are still told, and the
    later ones stay."""
    clock, told = Clock(), list[Key]()

    def tell(key: Key) -> None:
        if key[0] == "broken":
            raise RuntimeError("the session's end failed")
        told.append(key)

    deadlines = Deadlines(tell, clock=clock)
    deadlines.set(("first", "/"), 1010.0)
    deadlines.set(("broken", "/"), 1011.0)
    deadlines.set(("after", "/"), 1012.0)
    deadlines.set(("later", "/"), 1100.0)
    clock.now = 1020.0
    with caplog.at_level(logging.ERROR, logger="server.realtime.deadlines"):
        deadlines.fire_due()
    assert told == [("first", "/"), ("after", "/")]
    assert len(deadlines) == 1
    assert any("broken" in record.getMessage() for record in caplog.records)
    clock.now = 1100.0
    deadlines.fire_due()
    assert told == [("first", "/"), ("after", "/"), ("later", "/")]
    deadlines.close()
