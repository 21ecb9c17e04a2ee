"""Statements built from a description: the conditional UPDATE of a change, list filters."""

from __future__ import annotations

import uuid
from typing import Any

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
    id_condition = f"id = {params.add(key)}"
    where = fence_sql(change, lambda _name, value: params.add(value))
    assignments = ", ".join(f"{c} = {e}" for c, e in _assignments(change, params).items())
    sql = (
        f"UPDATE jobs SET {assignments} WHERE {id_condition} AND {where} "
        f"RETURNING {JOB_COLUMNS}, now() AS store_now"
    )
    return Statement(sql, tuple(params.values))


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
    sets.update(_checkpoint_assignments(change.checkpoint, params))
    return sets


def _checkpoint_assignments(
    checkpoint: CheckpointWrite | str | None, params: Params
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
            "checkpoint_progress": params.add(float(checkpoint.progress)),
            "checkpoint_keys": params.add(list(checkpoint.keys)),
        }
    return {}


def _check_settable(name: str) -> None:
    """Column names go into SQL text: only the record's own fields may."""
    if name not in SETTABLE:
        raise ValueError(f"a change cannot set {name!r}")


def list_statement(where: JobFilter, *, limit: int, after: PageCursor | None) -> Statement:
    """Newest first by ``(created_at, id)``, keyset-paginated; one row more than a page
    tells whether there is a next one."""
    params = Params()
    conditions: list[str] = []
    if where.user_id is not None:
        conditions.append(f"user_id = {params.add(where.user_id)}")
    if where.state is not None:
        conditions.append(f"state = {params.add(where.state.value)}")
    if where.type is not None:
        conditions.append(f"type = {params.add(where.type)}")
    if where.tag is not None:
        conditions.append(f"tags @> ARRAY[{params.add(where.tag)}::text]")
    if where.parent_id is not None:
        conditions.append(f"parent_id = {params.add(uuid.UUID(where.parent_id))}")
    if where.priority is not None:
        conditions.append(f"priority = {params.add(where.priority)}")
    if after is not None:
        cursor = f"({params.add(after.created_at)}, {params.add(uuid.UUID(after.id))})"
        conditions.append(f"(created_at, id) < {cursor}")
    where_sql = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    sql = (
        f"SELECT {JOB_COLUMNS} FROM jobs {where_sql} "
        f"ORDER BY created_at DESC, id DESC LIMIT {params.add(limit + 1)}"
    )
    return Statement(sql, tuple(params.values))


__all__ = ["Params", "Statement", "list_statement", "update_statement"]
