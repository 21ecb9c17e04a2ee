"""Stale heartbeats without waiting: time is driven, never slept through.

- :class:`ManualClock`: a clock for :class:`~server.store.memory.MemoryJobStore` that moves
  only when a test says so.
- :class:`HeartbeatAging`: make a job's last heartbeat ``by_s`` seconds older. On the memory
  store that advances its clock (every job ages); on Postgres it writes ``last_heartbeat_at``
  into the past for that job, since the store compares with the server's ``now()``.
- :func:`aging_store`: the ``kind`` store together with its :class:`HeartbeatAging`.

A heartbeat timeout can then be long (a minute): nothing turns stale on a slow machine
unless the test ages it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Protocol

import attrs
import pytest

from server.store.base import JobStore
from server.store.memory import MemoryJobStore
from tests.support.server import TEST_BACKLOG, opened_store

START = datetime(2026, 1, 1, tzinfo=UTC)


class ManualClock:
    """``clock()`` answers ``now``, which only :meth:`advance` moves."""

    def __init__(self, start: datetime = START) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


class HeartbeatAging(Protocol):
    async def age(self, job_id: str, by_s: float) -> None:
        """Make the last heartbeat of ``job_id`` at least ``by_s`` seconds older."""


@attrs.frozen
class ClockAging:
    """Memory store: time passes for every job."""

    clock: ManualClock

    async def age(self, job_id: str, by_s: float) -> None:
        self.clock.advance(by_s)


@attrs.frozen
class RowAging:
    """Postgres: the job's ``last_heartbeat_at`` is written into the past."""

    dsn: str

    async def age(self, job_id: str, by_s: float) -> None:
        from tests.support.postgres import connected

        async with connected(self.dsn) as conn:
            updated = await conn.execute(
                "UPDATE jobs SET last_heartbeat_at = last_heartbeat_at"
                " - make_interval(secs => $2) WHERE id = $1",
                job_id,
                by_s,
            )
        assert updated == "UPDATE 1", f"no job {job_id} to age"


@contextlib.asynccontextmanager
async def aging_store(
    kind: str, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[JobStore, HeartbeatAging]]:
    """The ``kind`` store (as :func:`~tests.support.server.opened_store` opens it, the memory
    one on a :class:`ManualClock`) and the way to age its heartbeats."""
    if kind == "memory":
        clock = ManualClock()
        store = MemoryJobStore(backlog_size=TEST_BACKLOG, clock=clock)
        try:
            yield store, ClockAging(clock)
        finally:
            await store.close()
        return
    async with opened_store(kind, request) as opened:
        yield opened, RowAging(request.getfixturevalue("postgres_dsn"))
