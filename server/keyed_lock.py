"""Per-key asyncio locks that exist only while someone holds or waits for them.

Every change of a job holds its key (the service's per-job order), and most find it free: that
path takes a dict entry only, neither an ``asyncio.Lock`` nor a generator-based context manager
(0.6 against 3.8 us a hold, docs/performance.md). Callers that find the key held queue a
future each and are handed the key in the order they came, as ``asyncio.Lock`` would.
"""

from __future__ import annotations

import asyncio
import collections
from types import TracebackType


class KeyedLock:
    def __init__(self) -> None:
        #: Each held key and the turns waiting behind its holder, first come first.
        self._waiting: dict[str, collections.deque[asyncio.Future[None]]] = {}

    def hold(self, key: str) -> Hold:
        """``async with lock.hold(key):`` runs the block while no one else holds ``key``."""
        return Hold(self, key)

    async def acquire(self, key: str) -> None:
        """Wait until ``key`` is free, and hold it; pair with :meth:`release`."""
        waiting = self._waiting.get(key)
        if waiting is None:
            self._waiting[key] = collections.deque()
            return
        turn = asyncio.get_running_loop().create_future()
        waiting.append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if not turn.cancelled():  # the key was handed over as the wait was cancelled
                self.release(key)
            raise

    def release(self, key: str) -> None:
        """Hand ``key`` to the first caller still waiting for it, or free it."""
        waiting = self._waiting[key]
        while waiting:
            turn = waiting.popleft()
            if not turn.done():  # (a cancelled wait is done)
                turn.set_result(None)
                return
        del self._waiting[key]

    def waiters(self, key: str) -> int:
        """Callers waiting for ``key`` (its holder not counted)."""
        return sum(1 for turn in self._waiting.get(key, ()) if not turn.done())

    def __len__(self) -> int:
        """Keys held now."""
        return len(self._waiting)


class Hold:
    """The context manager of :meth:`KeyedLock.hold`."""

    __slots__ = ("_key", "_lock")

    def __init__(self, lock: KeyedLock, key: str) -> None:
        self._lock = lock
        self._key = key

    async def __aenter__(self) -> None:
        await self._lock.acquire(self._key)

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._lock.release(self._key)


__all__ = ["Hold", "KeyedLock"]
