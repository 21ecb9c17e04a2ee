"""One job's stream as a client follows it: the replay algorithm of docs/protocol.md, pure.

:class:`JobStream` keeps the job's latest known state (its ``seq`` and ``epoch`` are the
cursor). Feed it every replay (a ``job:subscribe`` ack or a ``job:sync`` slot) with
:meth:`~JobStream.on_replay` and every live event with :meth:`~JobStream.on_event`: it
applies each seq once and in order, drops duplicates, and answers :attr:`Verdict.RESYNC` on
a gap or another epoch, after which the caller asks for a replay from the cursor.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

import attrs

from jobspine_client.fold import apply_event
from jobspine_shared.models import JobRecord
from jobspine_shared.wire import job_from_wire


class Verdict(enum.StrEnum):
    """What :meth:`JobStream.on_event` did with an event."""

    APPLIED = "applied"
    #: Already seen (``seq`` at or below the cursor): dropped.
    DUPLICATE = "duplicate"
    #: Another job's event: ignored.
    OTHER_JOB = "other_job"
    #: No state to apply it to yet (the first replay is pending, and will hold it): dropped.
    EARLY = "early"
    #: A seq gap or another epoch: ask for a replay from the cursor.
    RESYNC = "resync"


@attrs.frozen
class Replayed:
    """What a replay did: the events applied (in order), and whether the state was replaced
    by the snapshot (``reset``: the server could not replay from our cursor; ``first``: we
    had no state)."""

    events: list[Mapping[str, Any]]
    reset: bool = False
    first: bool = False
    changed: bool = False


class JobStream:
    def __init__(self, job_id: str, job: JobRecord | None = None) -> None:
        self.job_id = job_id
        self.job = job
        #: Snapshots taken instead of events (the first one included).
        self.snapshots = 0

    @property
    def last_seq(self) -> int | None:
        return None if self.job is None else self.job.seq

    @property
    def epoch(self) -> str | None:
        return None if self.job is None else self.job.epoch

    def subscribe_payload(self) -> dict[str, Any]:
        """``{job_id}``, plus ``after_seq`` and ``epoch`` once there is a state."""
        payload: dict[str, Any] = {"job_id": self.job_id}
        if self.job is not None:
            payload.update(after_seq=self.job.seq, epoch=self.job.epoch)
        return payload

    def on_replay(self, answer: Mapping[str, Any]) -> Replayed:
        """Apply ``{recovered, events, job}``. Recovered: the events continue our cursor
        (seen ones dropped), then the snapshot, at the same seq, gives the fields events do
        not carry. Otherwise the snapshot is the truth to start from."""
        snapshot = job_from_wire(answer["job"])
        before = self.job
        if before is None or not answer.get("recovered") or snapshot.epoch != before.epoch:
            return self._restart_from(snapshot, first=before is None)
        applied: list[Mapping[str, Any]] = []
        for event in answer.get("events", []):
            verdict = self.on_event(event)
            if verdict is Verdict.APPLIED:
                applied.append(event)
            elif verdict is Verdict.RESYNC:
                return self._restart_from(snapshot, first=False)
        assert self.job is not None
        if self.job.seq != snapshot.seq:
            # The replay does not reach the snapshot: never by contract; the snapshot is safe.
            return self._restart_from(snapshot, first=False)
        changed = bool(applied) or self.job != snapshot
        self.job = snapshot
        return Replayed(events=applied, changed=changed)

    def _restart_from(self, snapshot: JobRecord, *, first: bool) -> Replayed:
        changed = self.job != snapshot
        self.job = snapshot
        self.snapshots += 1
        return Replayed(events=[], reset=not first, first=first, changed=changed)

    def on_event(self, event: Mapping[str, Any]) -> Verdict:
        if event.get("job_id") != self.job_id:
            return Verdict.OTHER_JOB
        if self.job is None:
            return Verdict.EARLY
        seq = event.get("seq")
        if isinstance(seq, bool) or not isinstance(seq, int):
            return Verdict.RESYNC
        if event.get("epoch") != self.job.epoch:
            return Verdict.RESYNC
        if seq <= self.job.seq:
            return Verdict.DUPLICATE
        if seq != self.job.seq + 1:
            return Verdict.RESYNC
        self.job = apply_event(self.job, event)
        return Verdict.APPLIED


__all__ = ["JobStream", "Replayed", "Verdict"]
