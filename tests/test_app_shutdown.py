"""The app's shutdown order: the background services stop, the socket calls still running
finish, and only then does the repository close (pending trailing progress events, what
cancelled callers left), while Socket.IO, Redis and the store are still up.

The repository used to close first: a call still running, or the supervisor's last tick, then
went on against a closed repository, whose left-over work (a trailing timer of a report
cancelled in its write, say) nothing waited for before the store closed.
"""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from server.app import create_app
from server.commands.worker import parse_progress
from server.config import load_settings
from server.keys import IN_FLIGHT, REPOSITORY, SUPERVISOR
from server.store.memory import MemoryJobStore
from server.supervisor import Supervisor
from tests.support.jobs import running
from tests.support.server import TEST_BACKLOG, TEST_SECRET, TIMEOUT_S

#: One live progress event per job and 100 s: a second report is always held, and its trailing
#: timer never rings within a test, so only the repository's close can publish it.
SLOW_RATE = "0.01"


class ObservedSupervisor(Supervisor):
    """The app's supervisor, telling when its task has stopped."""

    stopped: asyncio.Event

    async def run(self) -> None:
        try:
            await super().run()
        finally:
            self.stopped.set()


async def test_a_call_still_running_at_shutdown_gets_its_trailing_progress_event() -> None:
    settings = load_settings({"JWT_SECRET": TEST_SECRET, "PROGRESS_EVENTS_PER_S": SLOW_RATE})
    store = MemoryJobStore(backlog_size=TEST_BACKLOG)
    app = create_app(settings, store=store)
    repository = app[REPOSITORY]
    supervisor = ObservedSupervisor(repository, interval_s=settings.supervisor_interval_s)
    supervisor.stopped = asyncio.Event()
    app[SUPERVISOR] = supervisor
    runner = web.AppRunner(app, shutdown_timeout=TIMEOUT_S)
    await runner.setup()
    job_id, lease = await running(repository)
    await repository.update_progress(
        parse_progress({"job_id": job_id, "lease": lease, "progress": 1.0})
    )

    in_flight = app[IN_FLIGHT]
    in_flight.enter()

    async def call_running_through_shutdown() -> None:
        # Reports once the background services have stopped: the socket calls are being
        # drained by then.
        try:
            await supervisor.stopped.wait()
            await repository.update_progress(
                parse_progress({"job_id": job_id, "lease": lease, "progress": 2.0})
            )
        finally:
            in_flight.leave()

    call = asyncio.create_task(call_running_through_shutdown())
    await asyncio.wait_for(runner.cleanup(), TIMEOUT_S)

    assert call.done()
    call.result()  # the report was taken (no error from a closed repository)
    read = await store.read_stream(job_id, 0)
    assert read is not None
    last = read.events[-1]
    assert (str(last.type), last.data.get("progress")) == ("job:progress", 2.0)
    assert [e.seq for e in read.events] == list(range(read.events[0].seq, read.events[-1].seq + 1))


async def test_the_repository_closes_after_the_supervisor_stopped_and_the_calls_finished(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = load_settings({"JWT_SECRET": TEST_SECRET})
    app = create_app(settings, store=MemoryJobStore(backlog_size=TEST_BACKLOG))
    repository = app[REPOSITORY]
    supervisor = ObservedSupervisor(repository, interval_s=settings.supervisor_interval_s)
    supervisor.stopped = asyncio.Event()
    app[SUPERVISOR] = supervisor
    in_flight = app[IN_FLIGHT]
    seen_at_close: list[tuple[bool, int]] = []
    close = repository.close

    async def observed_close() -> None:
        seen_at_close.append((supervisor.stopped.is_set(), len(in_flight)))
        await close()

    monkeypatch.setattr(repository, "close", observed_close)
    runner = web.AppRunner(app, shutdown_timeout=TIMEOUT_S)
    await runner.setup()
    in_flight.enter()

    async def call_running_through_shutdown() -> None:
        try:
            await supervisor.stopped.wait()
        finally:
            in_flight.leave()

    call = asyncio.create_task(call_running_through_shutdown())
    await asyncio.wait_for(runner.cleanup(), TIMEOUT_S)
    assert call.done()
    assert seen_at_close == [(True, 0)]
