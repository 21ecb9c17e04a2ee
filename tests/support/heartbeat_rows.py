"""Rows for heartbeat tests on Postgres, written and counted with plain SQL: many running
jobs at once, and how many of them heartbeated lately."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg


async def running_jobs(conn: asyncpg.Connection[Any], count: int) -> list[tuple[str, str]]:
    """``count`` running jobs, (id, lease) each, their last heartbeat an hour ago; ids in
    ascending order, inserted in that order."""
    ids = sorted(uuid.uuid4() for _ in range(count))
    leases = [f"lease-{i}" for i in range(count)]
    await conn.execute(
        "INSERT INTO jobs (id, user_id, type, created_at, updated_at, epoch, seq)"
        " SELECT id, 'alice', 'research', now(), now(), 'e1', 1"
        " FROM unnest($1::uuid[]) WITH ORDINALITY AS t(id, n) ORDER BY n",
        ids,
    )
    await conn.execute(
        "UPDATE jobs SET state = 'running', lease = t.lease, started_at = now(), attempt = 1,"
        " last_heartbeat_at = now() - interval '1 hour'"
        " FROM unnest($1::uuid[], $2::text[]) AS t(id, lease) WHERE jobs.id = t.id",
        ids,
        leases,
    )
    return [(str(i), lease) for i, lease in zip(ids, leases, strict=True)]


async def beaten_since(conn: asyncpg.Connection[Any], minutes: int) -> int:
    """How many jobs heartbeated within the last ``minutes``."""
    count: int = await conn.fetchval(
        "SELECT count(*) FROM jobs WHERE last_heartbeat_at > now() - make_interval(mins => $1)",
        minutes,
    )
    return count
