"""At most N live ``job:progress`` events per job and second, the latest value always sent.

A chatty worker may report progress hundreds of times a second; every report is stored, but
an event for each would flood the job's stream, its backlog and every subscriber. The gate
decides, per job, whether a progress update appends an event now:

* the first update after a quiet ``1/N`` s does (a *live* event);
* an update within ``1/N`` s of the job's last progress event does not (it is *held*): the
  store updates the job's row only, so ``seq`` does not move and no gap can open;
* once the window of a held update closes, one *trailing* event is appended with the job's
  stored progress and step at that moment, the latest value, so clients see the last value
  within ``1/N`` s;
* before any other event of the job (checkpoint, paused, completed, cancelled, …) a pending
  trailing event is appended first, so the stream never shows a stale progress after a later
  event and never skips the last value.

The gate only decides and keeps time; :class:`server.service.JobRepository` applies the
changes under its per-job lock (``flush`` is its callback that appends a trailing event).
Events keep their order and seqs because every event of a job is appended under that lock.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

import attrs

from server.store.progress import ProgressWrite

log = logging.getLogger(__name__)

Clock = Callable[[], float]
#: Appends the trailing event of a job (taking the repository's per-job lock).
Flush = Callable[[str], Awaitable[None]]


@attrs.define
class _Window:
    """A job's progress window: when its last progress event was appended, and the held
    update (the last one stored without an event) still waiting for its trailing event."""

    last_event_at: float
    held_write: ProgressWrite | None = None
    timer: asyncio.Task[None] | None = None


class ProgressGate:
    """Per-job rate of live progress events; ``events_per_s`` 0 lets every update through."""

    def __init__(self, events_per_s: float, flush: Flush, *, clock: Clock = time.monotonic) -> None:
        if events_per_s < 0:
            raise ValueError("events_per_s must not be negative")
        self.events_per_s = events_per_s
        self.interval_s = 1.0 / events_per_s if events_per_s > 0 else 0.0
        self._flush = flush
        self._clock = clock
        #: Oldest event first, so windows that closed are pruned from the front.
        self._windows: collections.OrderedDict[str, _Window] = collections.OrderedDict()
        self._timers: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._closed = False
        self.held = 0

    @property
    def limited(self) -> bool:
        return self.interval_s > 0

    def admits(self, job_id: str) -> bool:
        """Whether a progress update of ``job_id`` appends an event now (no state change)."""
        if not self.limited or self._closed:
            return True
        window = self._windows.get(job_id)
        return window is None or self._clock() - window.last_event_at >= self.interval_s

    def event_appended(self, job_id: str) -> None:
        """A progress event of ``job_id`` was appended: its window starts now, and it carries
        the latest value, so no trailing event is needed any more."""
        if not self.limited:
            if self._windows:  # (a report cancelled in its write left one: see update_held)
                self._windows.pop(job_id, None)
            return
        now = self._clock()
        window = self._windows.pop(job_id, None)
        if window is None:
            window = _Window(last_event_at=now)
        window.last_event_at, window.held_write = now, None
        self._windows[job_id] = window
        self._prune(now)

    def update_held(self, job_id: str, write: ProgressWrite) -> None:
        """``write``, a progress update of ``job_id``, was stored without an event: schedule
        its trailing event (the same values, with the event) for when the window closes.

        Also for a report whose caller was cancelled during its write, which may or may not
        have been stored, with or without its event: its trailing event is due when the
        window closes, at once on a gate without a limit."""
        window = self._windows.get(job_id)
        if window is None:  # pruned meanwhile: an event is due at once
            window = self._windows[job_id] = _Window(last_event_at=self._clock() - self.interval_s)
        window.held_write = write
        self.held += 1
        timer = window.timer
        if timer is None or timer.done():
            window.timer = asyncio.get_running_loop().create_task(
                self._trail(job_id), name=f"progress-trail-{job_id}"
            )
            self._timers.add(window.timer)
            window.timer.add_done_callback(self._timers.discard)

    def take_held(self, job_id: str) -> ProgressWrite | None:
        """``job_id``'s held update, cleared: the caller appends its trailing event now. None
        when no trailing event is pending."""
        window = self._windows.get(job_id)
        if window is None or window.held_write is None:
            return None
        write, window.held_write = window.held_write, None
        if not self.limited:
            del self._windows[job_id]  # (no window to keep: see update_held)
        return write

    def held_write(self, job_id: str) -> ProgressWrite | None:
        """``job_id``'s held update, left pending (:meth:`take_held` clears it)."""
        window = self._windows.get(job_id)
        return None if window is None else window.held_write

    def has_held(self, job_id: str) -> bool:
        window = self._windows.get(job_id)
        return window is not None and window.held_write is not None

    @property
    def pending(self) -> int:
        """Jobs whose trailing event is scheduled."""
        return len(self._timers)

    async def close(self) -> None:
        """Append every pending trailing event now and wait for them; later updates all get
        their event (nothing left to flush after the store closes)."""
        self._closed = True
        self._wake.set()
        if self._timers:
            await asyncio.gather(*self._timers, return_exceptions=True)

    def _prune(self, now: float) -> None:
        while self._windows:
            job_id, window = next(iter(self._windows.items()))
            if window.held_write is not None or now - window.last_event_at < self.interval_s:
                return
            del self._windows[job_id]

    async def _trail(self, job_id: str) -> None:
        """Wait until the job's window closes (a live event may have moved it since this
        timer started), then have the trailing event appended if one is still pending."""
        while not self._closed:
            window = self._windows.get(job_id)
            if window is None or window.held_write is None:
                return
            delay = window.last_event_at + self.interval_s - self._clock()
            if delay <= 0:
                break
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()
        window = self._windows.get(job_id)
        if window is not None and window.held_write is not None:
            # From here on this timer has taken its report: one held while the flush is
            # still under way (its publish can wait for its turn after the job's lock)
            # needs a timer of its own (update_held starts one), not this one.
            if window.timer is asyncio.current_task():
                window.timer = None
            try:
                await self._flush(job_id)
            except Exception:
                log.exception("trailing progress event of job %s failed", job_id)


__all__ = ["ProgressGate"]
