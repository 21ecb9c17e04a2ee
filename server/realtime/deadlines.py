"""Many keyed deadlines on one timer of the event loop: the session ends of every socket.

A ``TimerHandle`` per socket held a handle object, its arguments and, on uvloop, a libuv
timer for as long as the socket lived (docs/performance.md, "Memory per idle connection").
:class:`Deadlines` keeps each key's deadline in a dict and a heap of ``(deadline, key)``
entries, and one loop timer for the earliest. A deadline moved or dropped leaves its old
entry in the heap, skipped when it comes up; the heap is rebuilt from the dict once it holds
more than twice as many entries as there are keys, so sockets that came and went within
their sessions cost nothing after a while.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections.abc import Callable

Key = tuple[str, str]

log = logging.getLogger(__name__)

#: Stale heap entries allowed beyond the live ones before the heap is rebuilt.
_SLACK = 64
#: A deadline within this is due now: the loop's timer may fire a little early by the
#: clock (uvloop's timers count milliseconds), which would otherwise re-arm it again and
#: again until then.
EARLY_S = 0.001


class Deadlines:
    """``on_due(key)`` for each key once ``clock()`` reaches its deadline (seconds on the
    clock's scale); a key is due once, unless it is set again. An ``on_due`` that raises is
    logged and the other keys are still told."""

    def __init__(self, on_due: Callable[[Key], None], *, clock: Callable[[], float]) -> None:
        self._on_due = on_due
        self._clock = clock
        self._due_at: dict[Key, float] = {}
        self._heap: list[tuple[float, Key]] = []
        self._alarm: asyncio.TimerHandle | None = None
        self._alarm_at = 0.0

    def __len__(self) -> int:
        return len(self._due_at)

    def set(self, key: Key, at: float) -> None:
        """``key`` is due at ``at`` (instead of when it was due before)."""
        self._due_at[key] = at
        heapq.heappush(self._heap, (at, key))
        if len(self._heap) > 2 * len(self._due_at) + _SLACK:
            self._heap = [(due, k) for k, due in self._due_at.items()]
            heapq.heapify(self._heap)
        if self._alarm is None or at < self._alarm_at:
            self._arm(at)

    def discard(self, key: Key) -> None:
        self._due_at.pop(key, None)

    def fire_due(self) -> None:
        """Tell every key whose deadline the clock reached, then wait for the next one."""
        self._alarm = None
        now = self._clock() + EARLY_S
        heap, due_at = self._heap, self._due_at
        while heap and heap[0][0] <= now:
            at, key = heapq.heappop(heap)
            if due_at.get(key) == at:
                del due_at[key]
                try:
                    self._on_due(key)
                except Exception:
                    log.exception("telling %s its deadline failed", key)
        while heap and due_at.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)  # moved or dropped since
        if heap:
            self._arm(heap[0][0])

    def close(self) -> None:
        """Forget every deadline; nothing is told any more."""
        if self._alarm is not None:
            self._alarm.cancel()
            self._alarm = None
        self._due_at.clear()
        self._heap.clear()

    def _arm(self, at: float) -> None:
        if self._alarm is not None:
            self._alarm.cancel()
        delay = max(0.0, at - self._clock())
        self._alarm = asyncio.get_running_loop().call_later(delay, self.fire_due)
        self._alarm_at = at


__all__ = ["Deadlines", "Key"]
