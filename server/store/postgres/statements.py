"""Statements built from a description: the conditional UPDATE of a change, list filters."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any, Final

import attrs

from server.store.model import (
    CLEAR_CHECKPOINT,
    NOW,
    CheckpointWrite,
    JobChange,
    JobFilter,
    Later,
    PageCursor,
)
from server.store.postgres.fencing import fence_sql
from server.store.postgres.rows import JOB_COLUMNS, SETTABLE, column_value
from server.store.rules import clears_lease, implied_fields


class Params:
    """Collects a statement's arguments and hands out their ``$n`` placeholders."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def add(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}"


@attrs.frozen
class Statement:
    sql: str
    args: tuple[Any, ...]


def update_statement(key: uuid.UUID, change: JobChange) -> Statement:
    """The single conditional UPDATE that applies ``change`` when all its conditions hold.

    The WHERE clause is :func:`server.store.rules.refusal` in SQL
    (:func:`~server.store.postgres.fencing.fence_sql`); the SET clause is
    :func:`server.store.rules.apply_in_memory` in SQL, with ``now()`` for ``NOW``.
    """
    params = Params()
    return Statement(_update_sql(params.add(key), change, params), tuple(params.values))


def _update_sql(key: str, change: JobChange, params: Params) -> str:
    """``key``: the SQL of the job's id."""
    where = fence_sql(change, lambda _name, value: params.add(value))
    assignments = ", ".join(f"{c} = {e}" for c, e in _assignments(change, params).items())
    return (
        f"UPDATE jobs SET {assignments} WHERE id = {key} AND {where} "
        f"RETURNING {JOB_COLUMNS}, now() AS store_now"
    )


def fixed_event_data(change: JobChange) -> list[dict[str, Any]] | None:
    """The data of the change's events when none is computed from the changed job (those
    can be written in the UPDATE's own statement); None otherwise."""
    datas = []
    for spec in change.events:
        if callable(spec.data):
            return None
        datas.append(dict(spec.data))
    return datas


def change_statement(
    key: uuid.UUID,
    change: JobChange,
    event_data: Sequence[dict[str, Any]],
    *,
    backlog_size: int,
    read_checkpoint: bool = False,
) -> Statement:
    """The whole change as one statement, atomic without a transaction: the conditional
    UPDATE (:func:`update_statement`), its events at the seqs it reserved (``event_data``:
    :func:`fixed_event_data`) with the backlog trimmed, the checkpoint written or cleared
    and the audit entry, each a data-modifying CTE over the changed row, so nothing is
    written when the UPDATE matched nothing. One round trip instead of up to six (BEGIN,
    UPDATE, events, checkpoint, audit, COMMIT). Returns the changed row with ``store_now``;
    ``read_checkpoint`` adds the job's checkpoint data as ``checkpoint_data`` (a claim's).
    Events that the backlog would drop at once are not inserted, as in
    :data:`~server.store.postgres.queries.APPEND_EVENTS`."""
    params = Params()
    ctes = _change_ctes(params.add(key), change, event_data, params, backlog_size=backlog_size)
    checkpoint = (
        ", (SELECT data FROM job_checkpoints WHERE job_id = changed.id) AS checkpoint_data"
        if read_checkpoint
        else ""
    )
    sql = f"WITH {', '.join(ctes)} SELECT changed.*{checkpoint} FROM changed"
    return Statement(sql, tuple(params.values))


def picked_change_statement(
    pick: Callable[[Params], str],
    fits: str,
    change: JobChange,
    event_data: Sequence[dict[str, Any]],
    *,
    backlog_size: int,
) -> Statement:
    """:func:`change_statement` for the job that ``pick`` chooses and locks in the same
    statement (its SQL, given the statement's parameters; it selects the columns ``fits``
    reads and ``id``), applied only when that job ``fits`` (SQL over those columns: the
    jobs ``change`` was made for). One row when ``pick`` chose a job: ``picked_id``, then
    the changed row's columns, NULL when the job did not fit (nothing was written); no row
    when there was no job to choose."""
    params = Params()
    ctes = [f"picked AS ({pick(params)})"]
    key = f"(SELECT id FROM picked WHERE {fits})"
    ctes += _change_ctes(key, change, event_data, params, backlog_size=backlog_size)
    sql = (
        f"WITH {', '.join(ctes)} "
        "SELECT picked.id AS picked_id, changed.* FROM picked LEFT JOIN changed ON true"
    )
    return Statement(sql, tuple(params.values))


def _change_ctes(
    key: str,
    change: JobChange,
    event_data: Sequence[dict[str, Any]],
    params: Params,
    *,
    backlog_size: int,
) -> list[str]:
    """The CTEs of :func:`change_statement`, ``changed`` first; ``key``: the SQL of the
    job's id."""
    ctes = [f"changed AS ({_update_sql(key, change, params)})"]
    if change.events:
        count = len(change.events)
        reserved = params.add(count)
        types = params.add([spec.type.value for spec in change.events])
        datas = params.add(list(event_data))
        skipped = params.add(count - backlog_size)
        backlog = params.add(backlog_size)
        ctes.append(
            "appended AS (INSERT INTO job_events (job_id, seq, type, at, data) "
            f"SELECT c.id, c.seq - {reserved}::bigint + e.n, e.type, c.store_now, e.data "
            f"FROM changed AS c, unnest({types}::text[], {datas}::jsonb[]) "
            f"WITH ORDINALITY AS e(type, data, n) WHERE e.n > {skipped}::bigint)"
        )
        ctes.append(
            "trimmed AS (DELETE FROM job_events AS t USING changed AS c "
            f"WHERE c.seq > {backlog}::bigint AND t.job_id = c.id "
            f"AND t.seq <= c.seq - {backlog}::bigint)"
        )
    if isinstance(change.checkpoint, CheckpointWrite):
        data = params.add(change.checkpoint.data)
        ctes.append(
            "saved AS (INSERT INTO job_checkpoints (job_id, data) "
            f"SELECT id, {data}::jsonb FROM changed "
            "ON CONFLICT (job_id) DO UPDATE SET data = EXCLUDED.data)"
        )
    elif change.checkpoint == CLEAR_CHECKPOINT:
        ctes.append(
            "cleared AS (DELETE FROM job_checkpoints AS k USING changed AS c WHERE k.job_id = c.id)"
        )
    if change.audit is not None:
        audit = change.audit
        action, actor = params.add(audit.action), params.add(audit.actor)
        details = params.add(dict(audit.details))
        ctes.append(
            "audited AS (INSERT INTO job_audit (job_id, action, actor, at, details) "
            f"SELECT id, {action}::text, {actor}::text, store_now, {details}::jsonb "
            "FROM changed)"
        )
    return ctes


def _assignments(change: JobChange, params: Params) -> dict[str, str]:
    """Column -> SQL expression; later entries override earlier ones, as in memory."""
    sets: dict[str, str] = {}
    for name, value in implied_fields(change).items():
        _check_settable(name)
        if value is NOW:
            sets[name] = "now()"
        elif isinstance(value, Later):
            sets[name] = f"now() + make_interval(secs => {params.add(float(value.seconds))})"
        else:
            sets[name] = params.add(column_value(name, value))
    for name, amount in change.increments.items():
        _check_settable(name)
        sets[name] = f"{name} + {params.add(amount)}"
    sets["seq"] = f"seq + {params.add(len(change.events))}"
    if change.new_lease is not None:
        sets["lease"] = params.add(change.new_lease)
        sets["worker_id"] = params.add(change.worker_id)
    elif clears_lease(change):
        sets["lease"] = "NULL"
    # (A checkpoint without its own progress takes the job's, as the change leaves it.)
    progress = sets.get("progress", "progress")
    sets.update(_checkpoint_assignments(change.checkpoint, params, progress))
    return sets


def _checkpoint_assignments(
    checkpoint: CheckpointWrite | str | None, params: Params, progress: str
) -> dict[str, str]:
    if checkpoint == CLEAR_CHECKPOINT:
        return dict.fromkeys(
            ("checkpoint_at", "checkpoint_size", "checkpoint_progress", "checkpoint_keys"), "NULL"
        ) | {"has_checkpoint": "false"}
    if isinstance(checkpoint, CheckpointWrite):
        return {
            "has_checkpoint": "true",
            "checkpoint_at": "now()",
            "checkpoint_size": params.add(checkpoint.size_bytes),
            "checkpoint_progress": (
                progress if checkpoint.progress is None else params.add(float(checkpoint.progress))
            ),
            "checkpoint_keys": params.add(list(checkpoint.keys)),
        }
    return {}


def _check_settable(name: str) -> None:
    """Column names go into SQL text: only the record's own fields may."""
    if name not in SETTABLE:
        raise ValueError(f"a change cannot set {name!r}")


#: Each :class:`~server.store.model.JobFilter` field as its condition (``{}``: its value).
_FILTER_CONDITIONS: Final = {
    "state": "state = {}",
    "type": "type = {}",
    "tag": "tags @> ARRAY[{}::text]",
    "parent_id": "parent_id = {}",
    "priority": "priority = {}",
}
assert set(_FILTER_CONDITIONS) == {field.name for field in attrs.fields(JobFilter)}


def list_statement(
    where: JobFilter, *, owner: str | None, limit: int, after: PageCursor | None
) -> Statement:
    """Newest first by ``(created_at, id)``, keyset-paginated; one row more than a page
    tells whether there is a next one."""
    params = Params()
    conditions: list[str] = []
    if owner is not None:
        conditions.append(f"user_id = {params.add(owner)}")
    for name, condition in _FILTER_CONDITIONS.items():
        value = getattr(where, name)
        if value is not None:
            conditions.append(condition.format(params.add(column_value(name, value))))
    if after is not None:
        cursor = f"({params.add(after.created_at)}, {params.add(uuid.UUID(after.id))})"
        conditions.append(f"(created_at, id) < {cursor}")
    where_sql = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    sql = (
        f"SELECT {JOB_COLUMNS} FROM jobs {where_sql} "
        f"ORDER BY created_at DESC, id DESC LIMIT {params.add(limit + 1)}"
    )
    return Statement(sql, tuple(params.values))


__all__ = [
    "Params",
    "Statement",
    "change_statement",
    "fixed_event_data",
    "list_statement",
    "picked_change_statement",
    "update_statement",
]
