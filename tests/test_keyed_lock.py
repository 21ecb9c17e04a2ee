"""The service's per-job lock: one holder per key, waiters served first come first, and a
cancelled waiter neither keeps the key nor loses it for the others."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from server.keyed_lock import KeyedLock


async def _until(condition: Callable[[], bool], *, deadline_s: float = 5.0) -> None:
    """Let other tasks run until ``condition()`` holds, within a deadline."""
    loop = asyncio.get_running_loop()
    ends = loop.time() + deadline_s
    while not condition():
        if loop.time() > ends:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0)


async def test_one_holder_per_key_and_waiters_in_the_order_they_came() -> None:
    lock = KeyedLock()
    order: list[str] = []
    release = asyncio.Event()

    async def first() -> None:
        async with lock.hold("job"):
            order.append("first in")
            await release.wait()
            order.append("first out")

    async def later(name: str) -> None:
        async with lock.hold("job"):
            order.append(name)

    holder = asyncio.create_task(first())
    await _until(lambda: order == ["first in"])
    waiters = [asyncio.create_task(later(f"w{i}")) for i in range(3)]
    await _until(lambda: lock.waiters("job") == 3)
    async with lock.hold("other"):  # another key is not held up
        order.append("other")
    assert order == ["first in", "other"]
    release.set()
    await asyncio.gather(holder, *waiters)
    assert order == ["first in", "other", "first out", "w0", "w1", "w2"]
    assert len(lock) == 0


@pytest.mark.parametrize("handed", [False, True], ids=["while-waiting", "as-it-is-handed-over"])
async def test_a_cancelled_waiter_leaves_the_key_to_the_next_one(handed: bool) -> None:
    lock = KeyedLock()
    await lock.acquire("job")
    entered: list[str] = []

    async def waiter(name: str) -> None:
        async with lock.hold("job"):
            entered.append(name)

    gone = asyncio.create_task(waiter("gone"))
    kept = asyncio.create_task(waiter("kept"))
    await _until(lambda: lock.waiters("job") == 2)
    if handed:  # "gone" is given the key, and cancelled before it runs: it passes it on
        lock.release("job")
        gone.cancel()
    else:
        gone.cancel()
        await asyncio.wait([gone])
        lock.release("job")
    with pytest.raises(asyncio.CancelledError):
        await gone
    await kept
    assert entered == ["kept"]
    assert len(lock) == 0


async def test_an_error_in_the_block_frees_the_key() -> None:
    lock = KeyedLock()
    with pytest.raises(RuntimeError):
        async with lock.hold("job"):
            raise RuntimeError("boom")
    assert len(lock) == 0
    async with lock.hold("job"):
        assert len(lock) == 1
