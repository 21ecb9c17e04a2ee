"""A worker's heartbeat as a fence: the one description of what a heartbeat requires.

A heartbeat only notes ``last_heartbeat_at`` (not ``updated_at``: it is not a change of the
job a client sees), so stores write it on their own fast paths; what they refuse is what
:func:`server.store.rules.refusal` says of :func:`heartbeat_fence`, on both stores
(``NotFound``, then ``LeaseLost`` when the job is not running under the lease). The Postgres
statements take their WHERE clause from it (:mod:`server.store.postgres.fencing`).
"""

from __future__ import annotations

from server.store.model import JobChange


def heartbeat_fence(lease: str) -> JobChange:
    """Running under ``lease``; nothing set, no event (the stores set the heartbeat)."""
    return JobChange(action="heartbeat", lease=lease)


__all__ = ["heartbeat_fence"]
