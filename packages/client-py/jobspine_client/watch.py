"""What :meth:`JobspineClient.watch` and :meth:`JobspineClient.watch_user` return.

Listeners are plain callables run on the client's event loop, in order; an exception in one
is logged and does not stop the others (start a task for slow work).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from jobspine_client.stream import JobStream, Replayed
from jobspine_shared.models import JobRecord

if TYPE_CHECKING:
    from jobspine_client.client import JobspineClient

log = logging.getLogger("jobspine_client")

Listener = Callable[[Any], object]


class Emitter:
    def __init__(self) -> None:
        self._listeners: dict[str, list[Listener]] = {}

    def on(self, name: str, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` on each ``name``; returns the function that stops it."""
        self._listeners.setdefault(name, []).append(listener)
        return lambda: self._listeners.get(name, []).remove(listener)

    def emit(self, name: str, value: Any) -> None:
        for listener in list(self._listeners.get(name, ())):
            try:
                listener(value)
            except Exception:
                log.exception("a %r listener failed", name)


def _ready_future() -> asyncio.Future[JobRecord]:
    future: asyncio.Future[JobRecord] = asyncio.get_running_loop().create_future()
    # A watch nobody awaits must not log "exception never retrieved" when it fails.
    future.add_done_callback(lambda f: f.cancelled() or f.exception())
    return future


class Watch:
    """One job, live: ``job`` is its latest state, ``last_seq``/``epoch`` the cursor.

    ``await watch.ready`` gives the first state the server confirmed (a replay from a stored
    cursor, or the snapshot). Events: ``event`` (each event of the job, in seq order, each
    seq once), ``change`` (the job after each change), ``reset`` (the state replaced by the
    snapshot: the server could not replay from the cursor, or the epoch changed).
    """

    def __init__(self, client: JobspineClient, stream: JobStream) -> None:
        self._client = client
        self.stream = stream
        self._emitter = Emitter()
        self.ready = _ready_future()
        self.closed = False

    @property
    def job_id(self) -> str:
        return self.stream.job_id

    @property
    def job(self) -> JobRecord | None:
        return self.stream.job

    @property
    def last_seq(self) -> int | None:
        return self.stream.last_seq

    @property
    def epoch(self) -> str | None:
        return self.stream.epoch

    def on(
        self, name: Literal["event", "change", "reset"], listener: Listener
    ) -> Callable[[], None]:
        return self._emitter.on(name, listener)

    async def close(self) -> None:
        """Stop watching (the client leaves the job's room when no other watch needs it)."""
        await self._client._unwatch(self)

    def _replayed(self, replayed: Replayed) -> None:
        for event in replayed.events:
            self._emitter.emit("event", event)
        if replayed.reset:
            self._emitter.emit("reset", self.stream.job)
        if replayed.changed or replayed.first:
            self._emitter.emit("change", self.stream.job)
        if not self.ready.done() and self.stream.job is not None:
            self.ready.set_result(self.stream.job)

    def _applied(self, event: Mapping[str, Any]) -> None:
        self._emitter.emit("event", event)
        self._emitter.emit("change", self.stream.job)

    def _failed(self, error: Exception) -> None:
        if not self.ready.done():
            self.ready.set_exception(error)


class UserWatch:
    """Every job of the user, live: ``jobs`` maps id to its latest state; ``change`` fires
    with a job each time it changes (a new job included). ``await ready`` after the first
    listing."""

    def __init__(self, client: JobspineClient) -> None:
        self._client = client
        self.streams: dict[str, JobStream] = {}
        self._emitter = Emitter()
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed = False

    @property
    def jobs(self) -> dict[str, JobRecord]:
        return {job_id: s.job for job_id, s in self.streams.items() if s.job is not None}

    def on(self, name: Literal["change"], listener: Listener) -> Callable[[], None]:
        return self._emitter.on(name, listener)

    async def close(self) -> None:
        await self._client._unwatch_user(self)

    def stream(self, job_id: str) -> JobStream:
        return self.streams.setdefault(job_id, JobStream(job_id))

    def _changed(self, job: JobRecord | None) -> None:
        if job is not None:
            self._emitter.emit("change", job)


__all__ = ["Emitter", "Listener", "UserWatch", "Watch"]
