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
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any


class SendQueue:
    """A FIFO of packets with one or more waiting getters, and ``join``/``task_done``
    accounting, as ``asyncio.Queue`` without a bound."""

    __slots__ = ("_finished", "_getters", "_items", "_unfinished")

    def __init__(self) -> None:
        self._items: collections.deque[Any] | None = None
        self._getters: list[asyncio.Future[None]] | None = None
        self._unfinished = 0
        self._finished: asyncio.Event | None = None

    def qsize(self) -> int:
        return 0 if self._items is None else len(self._items)

    def empty(self) -> bool:
        return self._items is None

    def put_nowait(self, item: Any) -> None:
        self._put(item)
        self._unfinished += 1
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
            getter = asyncio.get_running_loop().create_future()
            if self._getters is None:
                self._getters = []
            self._getters.append(getter)
            try:
                await getter
            except BaseException:
                getter.cancel()
                if getter in self._getters:
                    self._getters.remove(getter)
                if self._items is not None and not getter.cancelled():
                    self._wake_getter()
                raise
        return self._get()

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


__all__ = ["SendQueue"]
