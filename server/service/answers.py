"""What the service answers: domain objects the transports render for the wire."""

from __future__ import annotations

from typing import Any

import attrs

from jobspine_shared.models import JobEvent, JobRecord


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
class Claim:
    job: JobRecord
    lease: str
    checkpoint: dict[str, Any] | None


@attrs.frozen(kw_only=True)
class Created:
    """A create's answer: the job, and whether it existed already (idempotent replay)."""

    job: JobRecord
    existing: bool = False


@attrs.frozen(kw_only=True)
class JobPage:
    items: tuple[JobRecord, ...]
    next_cursor: str | None


__all__ = ["Claim", "Created", "JobPage", "RecoveryCheck", "Replay"]
