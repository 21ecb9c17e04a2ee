"""What the batchers of job changes share (:mod:`~server.store.postgres.progress_batch`,
:mod:`~server.store.postgres.checkpoint_batch`): rounds of one caller per job, and the
answers of the callers whose row the batch statement did not change.

A batch statement that matched no row for a caller wrote nothing for it. Why is judged on
the job as it is now by :func:`server.store.rules.refusal` (the function both stores use),
so the caller gets the error the unbatched path gives; when the job has changed since and
the change now applies, the caller is answered None and applies it unbatched.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import TypeAlias, TypeVar

import asyncpg

from server.errors import NotFound
from server.store.model import JobChange, StoredJob
from server.store.postgres.write_batch import Connection, Waiter
from server.store.rules import refusal

#: A ``jobs`` row (with ``store_now``) as the store's job.
RowDecoder: TypeAlias = "Callable[[asyncpg.Record], StoredJob]"

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")


def rounds_by_key(
    waiters: Sequence[Waiter[ItemT, ResultT]], key: Callable[[ItemT], uuid.UUID]
) -> list[list[Waiter[ItemT, ResultT]]]:
    """``waiters`` in arrival order, at most one of each job (``key``) in each round: a job
    changed twice in one batch (possible only across web instances: the repository holds a
    per-job lock around each call) is written in rounds, in arrival order."""
    rounds: list[list[Waiter[ItemT, ResultT]]] = []
    seen: list[set[uuid.UUID]] = []
    for waiter in waiters:
        job = key(waiter.item)
        index = next((i for i, keys in enumerate(seen) if job not in keys), len(rounds))
        if index == len(rounds):
            rounds.append([])
            seen.append(set())
        rounds[index].append(waiter)
        seen[index].add(job)
    return rounds


async def answer_refused(
    conn: Connection,
    refused: Sequence[Waiter[ItemT, ResultT | None]],
    *,
    key: Callable[[ItemT], uuid.UUID],
    change: Callable[[ItemT], JobChange],
    select_jobs_sql: str,
    decode: RowDecoder,
) -> None:
    """Answer the callers of ``refused`` (their rows did not match) from one read of their
    jobs (``select_jobs_sql``: the jobs of ``$1::uuid[]`` with ``store_now``): the error
    :func:`~server.store.rules.refusal` names for ``change`` of each, or None when it now
    applies (the caller applies it on its own)."""
    found = await conn.fetch(select_jobs_sql, sorted({key(w.item) for w in refused}))
    jobs = {r["id"]: (decode(r), r["store_now"]) for r in found}
    for waiter in refused:
        job, now = jobs.get(key(waiter.item), (None, None))
        if job is None or now is None:
            waiter.refuse(NotFound())
            continue
        error = refusal(job, change(waiter.item), now)
        if error is None:
            waiter.answer(None)  # changed since the batch: the caller applies it alone
        else:
            waiter.refuse(error)


__all__ = ["RowDecoder", "answer_refused", "rounds_by_key"]
