"""The supervisor's scan lock on a real Postgres: one holder at a time, released with it."""

from __future__ import annotations

import pytest

from server.store.postgres.scan_lock import PostgresScanLock
from tests.support.jobs import wait_until
from tests.support.postgres import admin_connection

pytestmark = pytest.mark.postgres


async def test_one_holder_at_a_time_and_the_next_takes_over_when_it_goes(
    postgres_dsn: str,
) -> None:
    first, second = PostgresScanLock(postgres_dsn), PostgresScanLock(postgres_dsn)
    try:
        assert await first.may_scan() is True
        assert await second.may_scan() is False
        assert await first.may_scan() is True  # still held
        await first.close()
        await wait_until(second.may_scan, within=10)  # once the old session has ended
        assert await first.may_scan() is False
    finally:
        await first.close()
        await second.close()


async def test_a_holder_whose_connection_was_killed_lets_go(postgres_dsn: str) -> None:
    first, second = PostgresScanLock(postgres_dsn), PostgresScanLock(postgres_dsn)
    try:
        assert await first.may_scan() is True
        async with admin_connection() as admin:
            killed = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_locks"
                " WHERE locktype = 'advisory' AND granted"
                " AND database = (SELECT oid FROM pg_database WHERE datname = $1)",
                postgres_dsn.rsplit("/", 1)[1],
            )
        assert killed == 1
        await wait_until(second.may_scan, within=10)
        assert await first.may_scan() is False  # it notices, and does not scan
    finally:
        await first.close()
        await second.close()
