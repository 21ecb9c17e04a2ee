"""The SQL text of the Postgres store: every fixed statement, with the index that serves it.

Statements built from a change (the conditional UPDATE, list filters) are in
:mod:`server.store.postgres.statements`; the batch statements beside their batchers.
"""

from __future__ import annotations

from typing import Final

from server.store.postgres.fencing import HEARTBEAT_SHAPE, fixed_fence
from server.store.postgres.rows import JOB_COLUMNS
from server.store.rules import ACTIVE_STATES

SELECT_JOB: Final = f"SELECT {JOB_COLUMNS}, now() AS store_now FROM jobs WHERE id = $1"
SELECT_JOBS: Final = (
    f"SELECT {JOB_COLUMNS}, now() AS store_now FROM jobs WHERE id = ANY($1::uuid[])"
)


def _insert_job(created_at: str, returning: str) -> str:
    """Insert a job in ``created`` at seq 1 (``$1``..``$13``: :func:`~server.store.postgres.
    writes.insert_args`), created and updated at ``created_at``: only when Postgres's clock
    has reached that time (:mod:`server.store.postgres.clock`)."""
    return f"""
INSERT INTO jobs (id, user_id, type, input, epoch, seq, created_at, updated_at,
                  priority, run_at, tags, parent_id, timeout_s, retry, idempotency_key,
                  correlation_id)
SELECT $1::uuid, $2::text, $3::text, $4::jsonb, $5::text, 1, {created_at}, {created_at},
       $6::int, $7::timestamptz, $8::text[], $9::uuid, $10::float8, $11::jsonb, $12::text,
       $13::text
WHERE {created_at} <= now()
RETURNING {returning}
"""


#: A create in its transaction, stamped by Postgres; its event follows (APPEND_EVENTS).
INSERT_JOB: Final = _insert_job("now()", f"{JOB_COLUMNS}, now() AS store_now")

#: A create as one statement: the job created at ``$14`` with its first event (seq ``$15``,
#: type ``$16``, data ``$17``, rendered from the record before the statement was sent), or
#: nothing at all when Postgres's clock has not reached ``$14`` (``inserted`` false). A
#: first event is never beyond the backlog, which holds at least one.
INSERT_JOB_ALONE: Final = f"""
WITH inserted AS ({_insert_job("$14::timestamptz", "id")}),
appended AS (
    INSERT INTO job_events (job_id, seq, type, at, data)
    SELECT id, $15::bigint, $16::text, $14::timestamptz, $17::jsonb FROM inserted
)
SELECT now() AS store_now, EXISTS (SELECT FROM inserted) AS inserted
"""

#: Take an idempotency key: a new one, or one whose holder took it more than the TTL ago.
#: A live key returns no row; a concurrent create of the same key waits here for the first
#: to commit (the unique index), then finds it live.
TAKE_KEY: Final = """
INSERT INTO job_idempotency AS k (user_id, key, job_id, created_at)
VALUES ($1, $2, $3, now())
ON CONFLICT (user_id, key) DO UPDATE
    SET job_id = EXCLUDED.job_id, created_at = EXCLUDED.created_at
    WHERE k.created_at <= now() - make_interval(secs => $4)
RETURNING job_id
"""

KEY_HOLDER: Final = f"""
SELECT {JOB_COLUMNS}, now() AS store_now FROM jobs
WHERE id = (SELECT job_id FROM job_idempotency WHERE user_id = $1 AND key = $2)
"""

#: Append a change's events and drop those past the backlog, in one statement. Events that
#: would be dropped at once (more new events than the backlog holds) are not inserted; while
#: a job has no more events than the backlog (``$2 <= 0``) the trim probes nothing.
APPEND_EVENTS: Final = """
WITH trimmed AS (
    DELETE FROM job_events WHERE $2 > 0 AND job_id = $1 AND seq <= $2
)
INSERT INTO job_events (job_id, seq, type, at, data)
SELECT $1, e.seq, e.type, $3, e.data
FROM unnest($4::bigint[], $5::text[], $6::jsonb[]) AS e(seq, type, data)
WHERE e.seq > $2
"""

UPSERT_CHECKPOINT: Final = """
INSERT INTO job_checkpoints (job_id, data) VALUES ($1, $2)
ON CONFLICT (job_id) DO UPDATE SET data = EXCLUDED.data
"""

DELETE_CHECKPOINT: Final = "DELETE FROM job_checkpoints WHERE job_id = $1"

INSERT_AUDIT: Final = """
INSERT INTO job_audit (job_id, action, actor, at, details) VALUES ($1, $2, $3, $4, $5)
"""


def claim_pick(columns: str, *, types: str | None, capped: str | None, cap: str | None) -> str:
    """The claimable job that comes first (highest priority, then oldest; ``run_at``
    reached), locked; SKIP LOCKED lets concurrent claims take the next one. ``columns``: what
    it returns; ``types``: the SQL of the types to claim (None: any); ``capped``: of users
    to pass over (those at MAX_RUNNING_PER_USER), ``cap``: of that cap (None: no cap, and
    no user passed over). Served by ``jobs_claim_type_idx`` or ``jobs_claim_any_idx``: each
    form has its own statement (rather than ``cardinality(types) = 0 OR …``) so each gets
    the plan of its own partial index."""
    conditions = ["state = 'created'", "(run_at IS NULL OR run_at <= now())"]
    if capped is not None:
        conditions.append(f"user_id <> ALL({capped}::text[])")
    if cap is not None:
        conditions.append(
            f"({cap}::int = 0 OR (SELECT count(*) FROM jobs AS r"
            f" WHERE r.state = 'running' AND r.user_id = jobs.user_id) < {cap}::int)"
        )
    if types is not None:
        conditions.append(f"type = ANY({types}::text[])")
    return (
        f"SELECT {columns} FROM jobs WHERE {' AND '.join(conditions)}"
        " ORDER BY priority DESC, created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED"
    )


#: The claim's choice when it may pass over users at the cap: ``$1`` the users to pass
#: over, ``$2`` the cap (0: none), ``$3`` the types.
CLAIM_ANY_SQL: Final = claim_pick(JOB_COLUMNS, types=None, capped="$1", cap="$2")
CLAIM_TYPES_SQL: Final = claim_pick(JOB_COLUMNS, types="$3", capped="$1", cap="$2")

#: Under the cap, concurrent claims of one user's jobs could each count the others out;
#: they recount one at a time under this lock (its second key: the user's hash).
CAP_LOCK: Final = "SELECT pg_advisory_xact_lock($1, hashtext($2))"
CAP_LOCK_KEY: Final = 0x6A73_6361  # "jsca"
COUNT_RUNNING: Final = "SELECT count(*) FROM jobs WHERE state = 'running' AND user_id = $1"

#: Running attempts past their ``timeout_s``; served by ``jobs_running_idx``.
FIND_TIMED_OUT_SQL: Final = f"""
SELECT {JOB_COLUMNS} FROM jobs
WHERE state = 'running' AND timeout_s IS NOT NULL
  AND started_at + make_interval(secs => timeout_s) < now()
ORDER BY started_at + make_interval(secs => timeout_s), id
LIMIT $1
"""

#: Delayed jobs that became due lately; served by ``jobs_delayed_idx``.
DUE_TYPES_SQL: Final = """
SELECT DISTINCT type FROM jobs
WHERE state = 'created' AND run_at IS NOT NULL
  AND run_at > now() - make_interval(secs => $1) AND run_at <= now()
ORDER BY type
"""

_FINISHED_AT: Final = """CASE state
        WHEN 'completed' THEN completed_at
        WHEN 'failed' THEN failed_at
        WHEN 'cancelled' THEN cancelled_at
    END"""

DELETE_JOB: Final = f"""
DELETE FROM jobs WHERE id = $1 AND state IN ('completed', 'failed', 'cancelled')
RETURNING {JOB_COLUMNS}
"""

#: Retention: one bounded batch, served by ``jobs_finished_idx``; SKIP LOCKED leaves a
#: job another transaction is changing (a restart) alone.
DELETE_FINISHED_SQL: Final = f"""
DELETE FROM jobs WHERE id IN (
    SELECT id FROM jobs
    WHERE state IN ('completed', 'failed', 'cancelled')
      AND ({_FINISHED_AT}) < now() - make_interval(secs => $1)
    ORDER BY ({_FINISHED_AT})
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
RETURNING {JOB_COLUMNS}
"""

#: A condition ANDed into a statement's WHERE clause: that statement (its own transaction)
#: commits without waiting for its WAL flush, which costs a few milliseconds per commit on a busy
#: disk. Only writes no client has been told about do: heartbeats (a time; the few lost
#: should Postgres crash within ``wal_writer_delay`` x3 only make their jobs look that much
#: older to the supervisor, against a timeout of a minute) and held progress reports
#: (:func:`~server.store.postgres.progress_batch.batch_progress_sql`). Changes with events
#: never do: a client may have seen them, and a lost event would give its seq away twice.
#: A condition, not a FROM item: the subquery has no column of the statement's tables, so
#: Postgres evaluates it once per statement (an InitPlan gating the plan); joined into FROM
#: it was evaluated again for every row of a batch (a nested loop's inner side).
ASYNC_COMMIT: Final = "(SELECT set_config('synchronous_commit', 'off', true)) IS NOT NULL"

#: A heartbeat, fenced by the lease in the same statement. It writes only
#: ``last_heartbeat_at``, which no index contains, so the UPDATE is HOT.
HEARTBEAT_SQL: Final = f"""
UPDATE jobs SET last_heartbeat_at = now()
WHERE id = $1 AND {fixed_fence(HEARTBEAT_SHAPE, lease="$2")} AND {ASYNC_COMMIT}
RETURNING pause_requested
"""

#: The supervisor's scan; served by the partial index ``jobs_running_idx``.
FIND_STALE_SQL: Final = f"""
SELECT {JOB_COLUMNS} FROM jobs
WHERE state = 'running' AND last_heartbeat_at < now() - make_interval(secs => $1)
ORDER BY last_heartbeat_at, id
LIMIT $2
"""


def _events_after(after_seq: str) -> str:
    """The lateral join of a job's events after ``after_seq`` as parallel arrays, with the
    bytes of their data (the ``job:sync`` budget counts them)."""
    return f"""LEFT JOIN LATERAL (
    SELECT array_agg(e.seq ORDER BY e.seq) AS seqs, array_agg(e.type ORDER BY e.seq) AS types,
           array_agg(e.at ORDER BY e.seq) AS ats, array_agg(e.data ORDER BY e.seq) AS datas,
           sum(octet_length(e.data::text)) AS data_bytes
    FROM job_events AS e WHERE e.job_id = jobs.id AND e.seq > {after_seq}
) AS ev ON true"""


#: A job and its events after a seq, in one statement: one snapshot without a transaction,
#: one round trip instead of four (BEGIN, two reads, COMMIT); replays run it on every
#: subscribe that carries ``after_seq`` (docs/performance.md, measure d).
READ_STREAM: Final = f"""
SELECT {JOB_COLUMNS}, now() AS store_now, ev.seqs, ev.types, ev.ats, ev.datas
FROM jobs
{_events_after("$2")}
WHERE id = $1
"""

_STREAM_BYTES = (
    "octet_length(jobs.input::text) + coalesce(octet_length(jobs.result::text), 0)"
    " + coalesce(ev.data_bytes, 0)"
)

#: ``job:sync``'s read: many jobs ($1, with their after_seq $2, in that order) and their
#: events in one statement; only the owner's ($3, NULL for any), and only while the jobs
#: before hold less than $4 bytes of JSON (input, result, event data; the first always).
READ_STREAMS: Final = f"""
SELECT * FROM (
    SELECT {JOB_COLUMNS}, now() AS store_now, ev.seqs, ev.types, ev.ats, ev.datas,
           w.wanted_order, {_STREAM_BYTES} AS own_bytes,
           sum({_STREAM_BYTES}) OVER (ORDER BY w.wanted_order) AS through_bytes
    FROM unnest($1::uuid[], $2::bigint[])
         WITH ORDINALITY AS w(wanted_id, wanted_after, wanted_order)
    JOIN jobs ON jobs.id = w.wanted_id
    {_events_after("w.wanted_after")}
    WHERE $3::text IS NULL OR jobs.user_id = $3
) AS sized
WHERE through_bytes - own_bytes < $4
ORDER BY wanted_order
"""

SELECT_CHECKPOINT: Final = f"""
SELECT {JOB_COLUMNS}, (SELECT data FROM job_checkpoints WHERE job_id = jobs.id) AS data
FROM jobs WHERE id = $1
"""

#: A page of a job's audit trail after position $2 (the entry's id); $3 is one more than the
#: page, to tell whether more remain. Served by ``job_audit_job_idx`` (job_id, id).
SELECT_AUDIT: Final = """
SELECT id, action, actor, at, details FROM job_audit
WHERE job_id = $1 AND id > $2 ORDER BY id LIMIT $3
"""

COUNT_ALL: Final = "SELECT state, count(*) AS n FROM jobs GROUP BY state"
COUNT_BY_STATE_AND_TYPE: Final = "SELECT state, type, count(*) AS n FROM jobs GROUP BY state, type"
COUNT_USER: Final = "SELECT state, count(*) AS n FROM jobs WHERE user_id = $1 GROUP BY state"
#: A user's jobs in :data:`~server.store.rules.ACTIVE_STATES`, before each create; served by
#: the partial index ``jobs_active_user_idx``, whose predicate is this one (the states as
#: literals, so the planner proves it: a parameter would not), and which holds no ended job.
COUNT_ACTIVE: Final = (
    "SELECT count(*) FROM jobs WHERE user_id = $1 AND state IN ("
    + ", ".join(f"'{state.value}'" for state in ACTIVE_STATES)
    + ")"
)

JOB_STATE: Final = "SELECT state FROM jobs WHERE id = $1"
