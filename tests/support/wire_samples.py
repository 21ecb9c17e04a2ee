"""Hand-made wire samples for unit tests of client code: a job record, its snapshot, events."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from jobspine_shared.models import JobRecord
from jobspine_shared.wire import job_to_wire

JOB_ID = "00000000-0000-4000-8000-0000000000aa"
OTHER_ID = "00000000-0000-4000-8000-0000000000bb"
NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def record(seq: int = 1, *, epoch: str = "e1", **fields: Any) -> JobRecord:
    values: dict[str, Any] = {"user_id": "alice", "type": "research", **fields}
    return JobRecord(id=JOB_ID, created_at=NOW, updated_at=NOW, seq=seq, epoch=epoch, **values)


def snapshot(seq: int, *, epoch: str = "e1", **fields: Any) -> dict[str, Any]:
    return job_to_wire(record(seq, epoch=epoch, **fields))


def event(
    seq: int, kind: str = "job:progress", *, epoch: str = "e1", job_id: str = JOB_ID, **data: Any
) -> dict[str, Any]:
    """An event of ``job_id``; a ``job:progress`` without data gets ``seq`` as its progress."""
    if kind == "job:progress" and not data:
        data = {"progress": float(seq), "step": f"step {seq}"}
    return {
        "job_id": job_id,
        "user_id": "alice",
        "seq": seq,
        "epoch": epoch,
        "type": kind,
        "at": "2026-11-22T10:00:05Z",
        "data": data,
    }


__all__ = ["JOB_ID", "NOW", "OTHER_ID", "event", "record", "snapshot"]
