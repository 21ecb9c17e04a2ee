"""Wire views of the service's answers, written once for REST and Socket.IO alike: replays,
pages (with their cursors), recovery options, counts by state, checkpoints and audit trails.
Records and events themselves are rendered by :mod:`jobspine_shared.wire`."""

from __future__ import annotations

from typing import Any

from jobspine_shared.states import JobState
from jobspine_shared.wire import event_to_wire, format_time, job_to_wire
from server.page_cursors import encode_audit_cursor, encode_cursor
from server.recovery import recovery_options_to_wire
from server.service.answers import JobCounts, Replay
from server.store.model import AuditPage, Checkpoint, Page


def replay_to_wire(replay: Replay) -> dict[str, Any]:
    return {
        "recovered": replay.recovered,
        "events": [event_to_wire(e) for e in replay.events],
        "job": job_to_wire(replay.job),
    }


def page_to_wire(page: Page) -> dict[str, Any]:
    after = page.next_cursor
    return {
        "items": [job_to_wire(j) for j in page.items],
        "next_cursor": None if after is None else encode_cursor(after),
    }


def counts_to_wire(counts: JobCounts) -> dict[str, Any]:
    by_state = {str(state): counts.by_state.get(state, 0) for state in JobState}
    return {"by_state": by_state, "total": sum(by_state.values())}


def checkpoint_to_wire(checkpoint: Checkpoint) -> dict[str, Any]:
    return {
        "data": checkpoint.data,
        "saved_at": format_time(checkpoint.info.saved_at),
        "size_bytes": checkpoint.info.size_bytes,
        "progress": checkpoint.info.progress,
    }


def audit_to_wire(page: AuditPage) -> dict[str, Any]:
    items = [
        {"action": e.action, "actor": e.actor, "at": format_time(e.at), "details": e.details}
        for e in page.entries
    ]
    after = page.next_after
    return {"items": items, "next_cursor": None if after is None else encode_audit_cursor(after)}


__all__ = [
    "audit_to_wire",
    "checkpoint_to_wire",
    "counts_to_wire",
    "page_to_wire",
    "recovery_options_to_wire",
    "replay_to_wire",
]
