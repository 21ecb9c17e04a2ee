"""Postgres's clock as the web process can know it without asking: a lower bound.

A create written as one statement (:func:`~server.store.postgres.writes.insert_alone`)
carries its ``created_at``, because its ``job:created`` event holds the whole record and
must be rendered before the statement is sent. That time must not run ahead of Postgres's
own ``now()``, which stamps every later change of the job (``started_at``, each event's
``at``): a job is never started before it was created. Every statement that returns
Postgres's ``now()`` bounds the offset between the two clocks from below: ``now()`` was
taken before the answer arrived, so ``now() - arrival`` is at most the offset. The largest
such bound, added to the local clock, gives a time Postgres has already reached; the
statement checks it (``created_at <= now()``) and writes nothing otherwise (a clock stepped
back, or drifted), after which the create takes its transaction, stamped by Postgres, and
the bound starts again from that answer.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta


def _wall() -> datetime:
    return datetime.now(UTC)


class ClockBound:
    """The largest known lower bound of Postgres's clock minus the local one."""

    def __init__(self, wall: Callable[[], datetime] = _wall) -> None:
        self._wall = wall
        self._offset: timedelta | None = None

    def now(self) -> datetime | None:
        """A time Postgres's clock has reached; None until a statement has told."""
        if self._offset is None:
            return None
        return self._wall() + self._offset

    def answered(self, store_now: datetime) -> None:
        """A statement that took Postgres's ``now()`` as ``store_now`` has just answered."""
        bound = store_now - self._wall()
        if self._offset is None or bound > self._offset:
            self._offset = bound

    def refused(self, store_now: datetime) -> None:
        """A time from :meth:`now` was ahead of Postgres's ``store_now``: forget the bound,
        keep only this answer's."""
        self._offset = store_now - self._wall()


__all__ = ["ClockBound"]
