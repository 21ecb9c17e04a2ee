"""What the service answers: domain objects the transports render for the wire."""

from __future__ import annotations

import attrs

from jobspine_shared.models import JobEvent, JobRecord
from jobspine_shared.states import JobState


@attrs.frozen(kw_only=True)
class RecoveryCheck:
    """The answer to an admin's recovery check of one job."""

    recovered: bool
    job: JobRecord


@attrs.frozen(kw_only=True)
class Replay:
    """Answer to "what did I miss after ``after_seq``": the events, or the snapshot to restart."""

    job: JobRecord
    events: tuple[JobEvent, ...]
    recovered: bool


@attrs.frozen(kw_only=True)
class Created:
    """A create's answer: the job, and whether it existed already (idempotent replay)."""

    job: JobRecord
    existing: bool = False


@attrs.frozen(kw_only=True)
class SyncSlots:
    """The replays of a ``job:sync``, by job id (a job the caller may not see has none), and
    the ids the store's read left out for its byte budget (to be asked again)."""

    replays: dict[str, Replay]
    unread: frozenset[str] = frozenset()


@attrs.frozen(kw_only=True)
class JobCounts:
    """Jobs by state, of one user or (for an admin) of everyone; absent states have none."""

    by_state: dict[JobState, int]


__all__ = ["Created", "JobCounts", "RecoveryCheck", "Replay", "SyncSlots"]
