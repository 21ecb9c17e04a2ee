"""A lean send queue for each Engine.IO client: nothing but its slots while it is idle.

Engine.IO keeps one queue of outgoing packets per client (``create_queue``), an
``asyncio.Queue`` by default. That queue holds three deques (items, getters, putters) and an
``asyncio.Event`` with a fourth, and each deque allocates a block of 64 slots when it is
made: about 3 KB per connected client, most of what an idle connection costs beyond
aiohttp's own request and websocket objects (docs/performance.md, "Memory per idle
connection").

:class:`SendQueue` keeps the part of ``asyncio.Queue``'s behaviour that Engine.IO uses
(``put``, ``put_nowait``, ``get``, ``get_nowait``, ``task_done``, ``join``, ``qsize``,
``empty``), unbounded as Engine.IO's own: its items live in a deque only while there are
any, its getters in a list made when one first waits, and ``join`` makes its event only
when it has to wait.

:meth:`SendQueue.get_within` is the wait of a client's websocket writer (its
:mod:`server.realtime.writer_wait`): the next item, or :class:`TimeoutError` once none came for
a while, without ``asyncio.wait_for``'s task, future and timer per item. One timer per queue
stands for the deadline and is armed again only when it rings before it (the writer waited
again meanwhile), so a writer woken for every packet arms about one timer per deadline period
instead of one per packet.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any

#: A deadline this close is due now: uvloop's timers count milliseconds and may ring up to
#: one early.
EARLY_S = 0.001


class SendQueue:
    """A FIFO of packets with one or more waiting getters, and ``join``/``task_done``
    accounting, as ``asyncio.Queue`` without a bound."""

    __slots__ = (
        "_alarm",
        "_finished",
        "_getters",
        "_items",
        "_loop",
        "_timed",
        "_unfinished",
        "_waiting_since",
    )

    def __init__(self) -> None:
        self._items: collections.deque[Any] | None = None
        self._getters: list[asyncio.Future[None]] | None = None
        self._unfinished = 0
        self._finished: asyncio.Event | None = None
        #: The loop of the first wait (asyncio's ``get_running_loop`` costs a ``getpid`` on
        #: Python 3.11); the getter of :meth:`get_within` waiting now, since when, and the
        #: timer that stands for its deadline.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timed: asyncio.Future[None] | None = None
        self._waiting_since = 0.0
        self._alarm: asyncio.TimerHandle | None = None

    def qsize(self) -> int:
        return 0 if self._items is None else len(self._items)

    def empty(self) -> bool:
        return self._items is None

    def put_nowait(self, item: Any) -> None:
        self._put(item)
        self._unfinished += 1
        if item is None and self._alarm is not None:
            self._disarm()  # the end marker: the writer takes it at once, then ends
        self._wake_getter()

    async def put(self, item: Any) -> None:
        """Never waits: the queue has no bound of its own."""
        self.put_nowait(item)

    def get_nowait(self) -> Any:
        """The oldest item; :class:`asyncio.QueueEmpty` when there is none."""
        if self._items is None:
            raise asyncio.QueueEmpty
        return self._get()

    async def get(self) -> Any:
        """The oldest item, once there is one. A getter cancelled after it was woken
        passes the wake-up on, so that no item waits while another getter does."""
        while self._items is None:
            await self._wait(timed=False)
        return self._get()

    async def get_within(self, timeout_s: float) -> Any:
        """The oldest item, once there is one; :class:`TimeoutError` when none came within
        ``timeout_s`` of the start of this wait (for one getter at a time: a client's writer).
        The deadline's timer is disarmed when the end marker ``None`` is put (the writer
        ends) and when the wait is cancelled (the writer is), so that no timer keeps the
        queue of a closed socket alive."""
        if self._items is None:
            loop = self._loop or self._bind_loop()
            self._waiting_since = loop.time()
            if self._alarm is None:
                self._alarm = loop.call_at(self._waiting_since + timeout_s, self._ring, timeout_s)
            try:
                while self._items is None:
                    await self._wait(timed=True)
            except asyncio.CancelledError:
                self._disarm()
                raise
        return self._get()

    def _disarm(self) -> None:
        if self._alarm is not None:
            self._alarm.cancel()
            self._alarm = None

    async def _wait(self, *, timed: bool) -> None:
        getter = (self._loop or self._bind_loop()).create_future()
        if self._getters is None:
            self._getters = []
        self._getters.append(getter)
        if timed:
            self._timed = getter
        try:
            await getter
        except BaseException:
            getter.cancel()
            if getter in self._getters:
                self._getters.remove(getter)
            if self._items is not None and not getter.cancelled():
                self._wake_getter()
            raise
        finally:
            if timed:
                self._timed = None

    def _bind_loop(self) -> asyncio.AbstractEventLoop:
        self._loop = asyncio.get_running_loop()
        return self._loop

    def _ring(self, timeout_s: float) -> None:
        """The deadline's timer: fail the timed getter once its wait is ``timeout_s`` old,
        else arm again for when it will be (nobody waiting: the next wait arms it)."""
        self._alarm = None
        timed, loop = self._timed, self._loop
        if timed is None or timed.done() or loop is None:
            return
        due = self._waiting_since + timeout_s
        if loop.time() + EARLY_S >= due:
            timed.set_exception(TimeoutError())
        else:
            self._alarm = loop.call_at(due, self._ring, timeout_s)

    def task_done(self) -> None:
        if self._unfinished <= 0:
            raise ValueError("task_done() called too many times")
        self._unfinished -= 1
        if self._unfinished == 0 and self._finished is not None:
            self._finished.set()
            self._finished = None

    async def join(self) -> None:
        """Until every item put was taken and marked done."""
        if self._unfinished == 0:
            return
        if self._finished is None:
            self._finished = asyncio.Event()
        await self._finished.wait()

    # -- storage: subclasses count what goes in and out here -------------------------------

    def _put(self, item: Any) -> None:
        if self._items is None:
            self._items = collections.deque()
        self._items.append(item)

    def _get(self) -> Any:
        items = self._items
        assert items is not None
        item = items.popleft()
        if not items:
            self._items = None  # an idle client keeps no deque
        return item

    def _wake_getter(self) -> None:
        getters = self._getters
        while getters:
            getter = getters.pop(0)
            if not getter.done():
                getter.set_result(None)
                return


__all__ = ["EARLY_S", "SendQueue"]
