"""A jobs table filled in bulk, and the plans PostgreSQL picks for a query on it: for the
tests that hold each scan to its partial index."""

from __future__ import annotations

from typing import Any

import asyncpg


async def fill_jobs(conn: asyncpg.Connection[Any], count: int) -> None:
    """``count`` created jobs of 50 users, one second apart (job ``g`` is ``g`` seconds old),
    with priorities -3 to 3."""
    await conn.execute(
        "INSERT INTO jobs (id, user_id, type, created_at, updated_at, epoch, seq, priority)"
        " SELECT gen_random_uuid(), 'u' || (g % 50), 'research',"
        "        now() - g * interval '1 second', now(), 'e', 1, (g % 7) - 3"
        " FROM generate_series(1, $1::int) AS g",
        count,
    )


async def plan_of(conn: asyncpg.Connection[Any], sql: str, *args: Any) -> str:
    """The plan ``EXPLAIN`` shows for ``sql`` with ``args``, one line a node."""
    rows = await conn.fetch("EXPLAIN " + sql, *args)
    return "\n".join(row[0] for row in rows)
