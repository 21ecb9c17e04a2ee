"""The conditions of a change as SQL: :func:`server.store.rules.refusal`, written once.

Every fenced statement of the store takes its WHERE clause from here, built from the same
:class:`~server.store.model.JobChange` the memory store checks: the conditional UPDATE of
each change (:func:`server.store.postgres.statements.update_statement`, values as ``$n``
parameters), the heartbeat statements (:func:`server.store.heartbeat.heartbeat_fence`) and
the progress batch (:func:`server.store.progress.progress_change`), whose values come from
columns (``b.lease``) instead. ``tests/test_store_fencing.py`` checks that each path refuses
exactly what ``refusal`` names, on both stores.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from jobspine_shared.states import JobState
from server.store.heartbeat import heartbeat_fence
from server.store.model import JobChange
from server.store.progress import ProgressWrite, progress_change

#: How a condition's value enters the SQL: ``bind(name, value)`` returns its expression,
#: ``name`` being the JobChange field (``lease``, ``progress_at_most``, ...).
Binder = Callable[[str, Any], str]

#: The shape of every heartbeat and of every progress report (their values are not used:
#: fixed statements take them from the expressions they are given).
HEARTBEAT_SHAPE: Final = heartbeat_fence("")
PROGRESS_SHAPE: Final = progress_change(ProgressWrite(lease="", progress=0.0, step=None))


def fence_sql(change: JobChange, bind: Binder, *, table: str = "") -> str:
    """The WHERE conditions under which ``change`` applies (the id test is the caller's)."""
    prefix = f"{table}." if table else ""
    conditions = []
    if change.lease is None or JobState.RUNNING not in change.from_states:
        # (Implied by the lease's own test otherwise: a fenced job runs.)
        states = sorted(s.value for s in change.from_states)
        conditions.append(f"{prefix}state = ANY({bind('from_states', states)}::job_state[])")
    if change.lease is not None:
        conditions.append(
            f"{prefix}state = '{JobState.RUNNING.value}' "
            f"AND {prefix}lease = {bind('lease', change.lease)}"
        )
    if change.require_pause_requested:
        conditions.append(f"{prefix}pause_requested")
    if change.progress_at_most is not None:
        limit = bind("progress_at_most", change.progress_at_most)
        conditions.append(f"{prefix}progress <= {limit}")
    if change.stale_after_s is not None:
        after = bind("stale_after_s", float(change.stale_after_s))
        conditions.append(
            f"({prefix}last_heartbeat_at IS NULL OR "
            f"{prefix}last_heartbeat_at < now() - make_interval(secs => {after}))"
        )
    return " AND ".join(conditions)


def fixed_fence(change: JobChange, *, table: str = "", **values: str) -> str:
    """:func:`fence_sql` for a fixed statement: each value of ``change`` from the SQL
    expression given under its field name; the from-states, the rule's own constants,
    written inline."""

    def bind(name: str, value: Any) -> str:
        if name == "from_states":
            return "ARRAY[" + ", ".join(f"'{state}'" for state in value) + "]"
        return values[name]

    return fence_sql(change, bind, table=table)


__all__ = ["HEARTBEAT_SHAPE", "PROGRESS_SHAPE", "Binder", "fence_sql", "fixed_fence"]
