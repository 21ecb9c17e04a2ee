"""How the Redis outbox (``server/realtime/redis_outbox.py``) groups messages into batches:
a message after a quiet spell goes out at once and alone; while traffic is continuous, a
batch waits the publish window for more and carries what came meanwhile, in order. The
clock and the window's wait are the test's, so nothing here depends on real time; ``send``
is recorded instead of reaching Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from server.realtime.redis_outbox import BUSY_GAP_S, PUBLISH_WINDOW_S, RedisOutbox

WITHIN_S = 5.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


class Window:
    """The window's wait: held until the test lets it end."""

    def __init__(self) -> None:
        self.waits: list[float] = []
        self.entered = asyncio.Event()
        self.ended = asyncio.Event()

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.entered.set()
        await self.ended.wait()


class RecordingOutbox(RedisOutbox):
    def __init__(self, clock: Clock, window: Window, *, window_s: float) -> None:
        super().__init__(lambda: None, timeout_s=1.0, window_s=window_s, clock=clock, gather=window)
        self.batches: asyncio.Queue[list[bytes]] = asyncio.Queue()

    async def send(self, messages: list[tuple[str, bytes]]) -> bool:
        self.batches.put_nowait([message for _, message in messages])
        return True

    async def next_batch(self) -> list[bytes]:
        return await asyncio.wait_for(self.batches.get(), WITHIN_S)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def window() -> Window:
    return Window()


@pytest.fixture
async def outbox(clock: Clock, window: Window) -> AsyncIterator[RecordingOutbox]:
    outbox = RecordingOutbox(clock, window, window_s=PUBLISH_WINDOW_S)
    outbox.start()
    try:
        yield outbox
    finally:
        window.ended.set()
        await outbox.close()


async def test_a_message_after_a_quiet_spell_goes_out_at_once_and_alone(
    outbox: RecordingOutbox, clock: Clock, window: Window
) -> None:
    outbox.offer("c", b"first", ("job:1",))
    assert await outbox.next_batch() == [b"first"]
    clock.now += 2 * BUSY_GAP_S  # quiet for longer than the gap
    outbox.offer("c", b"second", ("job:1",))
    assert await outbox.next_batch() == [b"second"]
    assert window.waits == []


async def test_while_traffic_is_continuous_a_batch_waits_for_more_and_carries_them(
    outbox: RecordingOutbox, clock: Clock, window: Window
) -> None:
    outbox.offer("c", b"first", ("job:1",))
    assert await outbox.next_batch() == [b"first"]
    clock.now += BUSY_GAP_S / 2
    outbox.offer("c", b"second", ("job:1",))
    await asyncio.wait_for(window.entered.wait(), WITHIN_S)
    outbox.offer("c", b"third", ("job:2",))
    outbox.offer("d", b"fourth", ("user:a",))
    assert outbox.batches.empty()  # held by the window
    window.ended.set()
    assert await outbox.next_batch() == [b"second", b"third", b"fourth"]
    assert window.waits == [PUBLISH_WINDOW_S]


async def test_without_a_window_continuous_traffic_is_not_held(
    clock: Clock, window: Window
) -> None:
    outbox = RecordingOutbox(clock, window, window_s=0)
    outbox.start()
    try:
        outbox.offer("c", b"first", ("job:1",))
        assert await outbox.next_batch() == [b"first"]
        outbox.offer("c", b"second", ("job:1",))
        assert await outbox.next_batch() == [b"second"]
        assert window.waits == []
    finally:
        await outbox.close()
