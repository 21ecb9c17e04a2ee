"""Counting HOT updates of ``jobs`` in a test database, without autovacuum in the way."""

from __future__ import annotations

from typing import Any

import asyncpg


async def update_counts(conn: asyncpg.Connection[Any]) -> tuple[int, int]:
    """(updates, HOT updates) of ``jobs``, this backend's latest statements included."""
    await conn.execute("SELECT pg_stat_force_next_flush()")
    await conn.execute("SELECT pg_stat_clear_snapshot()")
    row = await conn.fetchrow(
        "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'jobs'"
    )
    assert row is not None
    return row["n_tup_upd"], row["n_tup_hot_upd"]


async def without_autovacuum(conn: asyncpg.Connection[Any]) -> None:
    """Keep autovacuum off ``jobs`` in this (throwaway) database.

    A page is pruned only of row versions no snapshot in the database can still see; an
    autovacuum ANALYZE of the fresh database holds such a snapshot for as long as it runs,
    which on a loaded machine is long enough to fill the page and push updates off it (the
    CI run of 2026-12-04 saw 165 of 200 HOT). The tests measure our statements, not that.
    """
    await conn.execute("ALTER TABLE jobs SET (autovacuum_enabled = false)")
