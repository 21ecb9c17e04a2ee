"""User calls as commands: each REST request or ``/`` event parsed once, by the same parser
for both transports, into a frozen record (or a checked job id)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from jobspine_shared import checks
from jobspine_shared.states import JobState
from server import validation
from server.page_cursors import decode_audit_cursor, decode_cursor
from server.store.model import JobFilter, PageCursor
from server.validation import Payload

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
MAX_SYNC_JOBS = 500


@attrs.frozen(kw_only=True)
class ReadStream:
    """What did I miss of ``job_id`` after ``after_seq`` (``None``: only the snapshot), in
    ``epoch`` (``None``: any)."""

    job_id: str
    after_seq: int | None = None
    epoch: str | None = None


@attrs.frozen(kw_only=True)
class SyncJobs:
    """Many replays in one call: ``after_seq`` per job id (keys not yet checked: a key that
    names no job is a ``not_found`` slot, not a refusal of the call)."""

    cursors: Mapping[str, int | None]
    epochs: Mapping[str, str] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class RestartJob:
    job_id: str
    #: A new input for the job (``None``: keep it).
    input: dict[str, Any] | None = None


@attrs.frozen(kw_only=True)
class ReadAudit:
    """A page of ``job_id``'s audit trail: ``limit`` entries after position ``after``."""

    job_id: str
    limit: int = DEFAULT_PAGE_SIZE
    after: int = 0


@attrs.frozen(kw_only=True)
class ListJobs:
    """``GET /api/jobs`` filters; ``user_id`` is honoured for admins only."""

    where: JobFilter = attrs.field(factory=JobFilter)
    user_id: str | None = None
    limit: int = DEFAULT_PAGE_SIZE
    after: PageCursor | None = None


def parse_job_ref(payload: Payload) -> str:
    """The ``job_id`` of a call about one job (pause, resume, cancel, recovery, ...)."""
    return validation.job_id(payload.get("job_id"))


def _epoch(value: object) -> str | None:
    if value is not None and not isinstance(value, str):
        raise validation.invalid("epoch", "must be a string")
    return value


def parse_read_stream(payload: Payload) -> ReadStream:
    """``job:subscribe`` data, ``GET /api/jobs/{id}/events`` (path id and query)."""
    after_seq = validation.after_seq(payload.get("after_seq"))
    epoch = _epoch(payload.get("epoch"))
    return ReadStream(
        job_id=validation.job_id(payload.get("job_id")), after_seq=after_seq, epoch=epoch
    )


def parse_sync(payload: Payload) -> SyncJobs:
    cursors, epochs = payload.get("cursors"), payload.get("epochs")
    if not isinstance(cursors, dict):
        raise validation.invalid("cursors", "must be an object of job_id: after_seq")
    if len(cursors) > MAX_SYNC_JOBS:
        raise validation.invalid("cursors", f"at most {MAX_SYNC_JOBS} jobs per call")
    checked = {
        str(key): validation.after_seq(value, f"cursors.{key}") for key, value in cursors.items()
    }
    if epochs is not None and (
        not isinstance(epochs, dict) or not all(isinstance(v, str) for v in epochs.values())
    ):
        raise validation.invalid("epochs", "must be an object of job_id: epoch")
    return SyncJobs(cursors=checked, epochs=dict(epochs or {}))


def parse_restart(payload: Payload) -> RestartJob:
    job_id = validation.job_id(payload.get("job_id"))
    raw = payload.get("input")
    return RestartJob(
        job_id=job_id, input=None if raw is None else validation.json_object(raw, "input")
    )


def _v2_filters(payload: Payload) -> JobFilter:
    """The list filters of contract v2, checked by the shared rules."""
    tag, parent_id, priority = (payload.get(k) for k in ("tag", "parent_id", "priority"))
    try:
        return JobFilter(
            tag=None if tag is None else checks.tag(tag),
            parent_id=None if parent_id is None else validation.job_id(parent_id, "parent_id"),
            priority=None if priority is None else checks.priority(priority),
        )
    except checks.ValueCheckError as exc:
        raise validation.invalid(exc.field, exc.message) from None


def parse_list(payload: Payload) -> ListJobs:
    """``GET /api/jobs`` query values (absent or empty ones as ``None``)."""
    v2 = _v2_filters(payload)
    state, job_type = payload.get("state"), payload.get("type")
    user_id, limit, cursor = (payload.get(k) for k in ("user_id", "limit", "cursor"))
    wanted_state = None
    if state is not None:
        if not isinstance(state, str) or state not in set(JobState):
            raise validation.invalid("state", "is not a job state")
        wanted_state = JobState(state)
    wanted_type = None if job_type is None else validation.job_type(job_type)
    if user_id is not None and not isinstance(user_id, str):
        raise validation.invalid("user_id", "must be a string")
    if user_id is not None:
        validation.storable_text(user_id, "user_id")
    after = None if cursor is None else decode_cursor(_cursor_text(cursor))
    where = attrs.evolve(v2, state=wanted_state, type=wanted_type)
    return ListJobs(where=where, user_id=user_id, limit=_page_size(limit), after=after)


def parse_audit(payload: Payload) -> ReadAudit:
    """``GET /api/jobs/{id}/audit``: the path's id, ``limit`` and ``cursor`` as for lists."""
    job_id = validation.job_id(payload.get("job_id"))
    limit, cursor = payload.get("limit"), payload.get("cursor")
    after = 0 if cursor is None else decode_audit_cursor(_cursor_text(cursor))
    return ReadAudit(job_id=job_id, limit=_page_size(limit), after=after)


def _page_size(limit: object) -> int:
    """A page's ``limit``: job lists and audit trails alike."""
    if limit is None:
        return DEFAULT_PAGE_SIZE
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE_SIZE:
        raise validation.invalid("limit", f"must be an integer from 1 to {MAX_PAGE_SIZE}")
    return limit


def _cursor_text(cursor: object) -> str:
    if not isinstance(cursor, str):
        raise validation.invalid("cursor", "must be a string")
    return cursor


__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "MAX_SYNC_JOBS",
    "ListJobs",
    "ReadAudit",
    "ReadStream",
    "RestartJob",
    "SyncJobs",
    "parse_audit",
    "parse_job_ref",
    "parse_list",
    "parse_read_stream",
    "parse_restart",
    "parse_sync",
]
