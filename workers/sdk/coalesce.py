"""Progress coalescing: a handler may report progress as often as it likes; the server sees
a bounded rate of meaningful updates, and never loses the last one."""

from __future__ import annotations

import time
from collections.abc import Callable

import attrs


@attrs.frozen
class ProgressUpdate:
    value: float
    step: str | None


class ProgressCoalescer:
    """Decides which progress reports go to the server now and which wait.

    A report goes out at once when at least ``min_interval_s`` passed since the last send and it
    differs from what was sent by at least ``min_delta`` or has a new ``step`` text. Otherwise it
    is kept as *pending*, replacing any older pending report; the owner flushes it later (on the
    heartbeat tick, and always before ``complete``/``paused``/``checkpoint``).

    Pure bookkeeping (no I/O) with an injectable clock, so it is unit-tested directly.
    """

    def __init__(
        self,
        *,
        min_delta: float = 0.5,
        min_interval_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if min_delta < 0 or min_interval_s < 0:
            raise ValueError("min_delta and min_interval_s must not be negative")
        self.min_delta = min_delta
        self.min_interval_s = min_interval_s
        self._clock = clock
        self._sent: ProgressUpdate | None = None
        self._sent_at: float | None = None
        self._pending: ProgressUpdate | None = None

    def offer(self, value: float, step: str | None) -> ProgressUpdate | None:
        """Record a report; return it when it should be sent now (then call :meth:`sent`)."""
        update = ProgressUpdate(value, step)
        self._pending = update
        if self._sent is not None and update == self._sent:
            self._pending = None
            return None
        if not self._interval_elapsed():
            return None
        if self._sent is None or self._meaningful(update, self._sent):
            return update
        return None

    def take_due(self) -> ProgressUpdate | None:
        """The pending report when the interval has elapsed (for a periodic flush)."""
        if self._pending is not None and self._interval_elapsed():
            return self._pending
        return None

    def take_pending(self) -> ProgressUpdate | None:
        """The pending report regardless of timing (for the final flush)."""
        return self._pending

    def sent(self, update: ProgressUpdate) -> None:
        """``update`` reached the server."""
        self._sent = update
        self._sent_at = self._clock()
        if self._pending == update:
            self._pending = None

    def superseded(self, value: float) -> None:
        """The server's progress moved to ``value`` by other means (a checkpoint with progress);
        a pending report below it would be refused as going down, so drop it."""
        if self._pending is not None and self._pending.value < value:
            self._pending = None

    def _interval_elapsed(self) -> bool:
        return self._sent_at is None or self._clock() - self._sent_at >= self.min_interval_s

    def _meaningful(self, update: ProgressUpdate, sent: ProgressUpdate) -> bool:
        return update.step != sent.step or abs(update.value - sent.value) >= self.min_delta
