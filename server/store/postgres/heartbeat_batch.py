"""Coalesce concurrent heartbeats into one fenced ``UPDATE … FROM unnest(…)``.

Why: every running job's worker heartbeats every few seconds, so with many jobs heartbeats
are most of the store's writes. One statement each costs a pool checkout, a round trip and a
commit (a WAL flush) per heartbeat, and the pool's ten connections cap how many run at once.
A heartbeat carries no data but "still alive", so heartbeats arriving within a few
milliseconds of each other can share one statement and one commit without changing what
any caller is told.

How: group commit (:mod:`server.store.postgres.write_batch`, the machinery both store
batchers share): a heartbeat that finds no batch being written is written at once, with the
heartbeats of the same event-loop turn; heartbeats that arrive while one is being written
make up the next batch, written as soon as it is done. No heartbeat waits on a timer, and
the batcher holds at most one pooled connection. Each caller is answered only after the
statement that wrote its heartbeat has completed (it runs outside a transaction, so it has
committed when its rows come back; asynchronously, see :data:`BATCH_HEARTBEAT_SQL`).

What a caller is told is what :meth:`server.store.postgres.store.PostgresJobStore.heartbeat` says
on its own: ``pause_requested`` when the job is running under that lease; otherwise one
follow-up read of the refused ids tells :class:`NotFound` from :class:`LeaseLost`. A
connection failure fails the whole batch with :class:`Unavailable`; the store's connection
factory (``PostgresJobStore._connection``, which applies ``unavailable_on_outage``) is the
one place where outages become that error, for batched heartbeats as for everything else.
"""

from __future__ import annotations

from typing import Final, NamedTuple

from server.errors import LeaseLost, NotFound
from server.store.postgres.fencing import HEARTBEAT_SHAPE, fixed_fence
from server.store.postgres.queries import ASYNC_COMMIT
from server.store.postgres.write_batch import Connection, Waiter, WriteBatcher

#: The batch's heartbeats, each fenced by its own lease as the single-job statement is. It
#: writes only ``last_heartbeat_at``, which no index contains, so every row update is HOT,
#: and commits without waiting for the WAL flush (:data:`~.queries.ASYNC_COMMIT`).
#: ``lease`` comes back so that an answer is matched to its (job, lease) pair: a batch may
#: hold one job under several leases (a superseded worker's among them), of which at most
#: the job's current one matches.
BATCH_HEARTBEAT_SQL: Final = f"""
UPDATE jobs AS j SET last_heartbeat_at = now()
FROM unnest($1::uuid[], $2::text[]) AS b(id, lease)
WHERE j.id = b.id AND {fixed_fence(HEARTBEAT_SHAPE, table="j", lease="b.lease")} AND {ASYNC_COMMIT}
RETURNING j.id, j.lease, j.pause_requested
"""

#: Why some heartbeats matched nothing: a missing job, or one no longer running under that
#: lease. A lease once lost never comes back, so reading after the UPDATE cannot be stale.
REFUSED_STATES_SQL: Final = "SELECT id, state FROM jobs WHERE id = ANY($1::uuid[])"


class _Heartbeat(NamedTuple):
    job_id: str  # canonical (rows.is_job_id): compared, hashed and encoded as it is
    lease: str


_Caller = Waiter[_Heartbeat, bool]


class HeartbeatBatcher(WriteBatcher[_Heartbeat, bool]):
    """Runs concurrent heartbeats as one statement per batch; see the module docstring.

    ``flushes`` (batches written), ``statements`` (everything sent, follow-up reads and
    retries included) and ``deadlock_retries`` are plain counters, for tests and benchmarks.
    """

    task_name = "heartbeat-batch"
    lost_message = "the heartbeat was not recorded"

    async def submit(self, job_id: str, lease: str) -> bool:
        """Record a heartbeat of ``job_id`` (a canonical uuid, :func:`~server.store.postgres.
        rows.is_job_id`) under ``lease`` with the others of its batch and return
        ``pause_requested``; raise ``NotFound``, ``LeaseLost`` or ``Unavailable`` as a
        single heartbeat would. Returns only after the write has committed."""
        return await self._submit(_Heartbeat(job_id, lease))

    async def _write(self, conn: Connection, live: list[_Caller]) -> None:
        # Duplicates answered once each; sorted so overlapping batches (of other web
        # instances, or the progress batch) tend to lock their rows in the same order (the
        # plan decides; a deadlock is retried, see fetch_retrying).
        pairs = sorted({w.item for w in live})
        rows = await self.fetch_retrying(
            conn,
            BATCH_HEARTBEAT_SQL,
            [p.job_id for p in pairs],
            [p.lease for p in pairs],
            what="heartbeat",
        )
        written = {(str(r["id"]), r["lease"]): bool(r["pause_requested"]) for r in rows}
        refused: list[_Caller] = []
        for waiter in live:
            pause_requested = written.get(waiter.item)
            if pause_requested is None:
                refused.append(waiter)
            else:
                waiter.answer(pause_requested)  # committed: autocommit statement
        if not refused:
            return
        self.statements += 1
        job_ids = sorted({w.item.job_id for w in refused})
        found = await conn.fetch(REFUSED_STATES_SQL, job_ids)
        states = {str(r["id"]): str(r["state"]) for r in found}
        for waiter in refused:
            job_id = waiter.item.job_id
            state = states.get(job_id)
            if state is None:
                waiter.refuse(NotFound())
            else:
                waiter.refuse(LeaseLost(details={"state": state, "job_id": job_id}))


__all__ = [
    "BATCH_HEARTBEAT_SQL",
    "REFUSED_STATES_SQL",
    "HeartbeatBatcher",
]
