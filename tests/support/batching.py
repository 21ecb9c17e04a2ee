"""The Postgres store's write batchers under test: a store opened with a short backlog, its
batchers, and a heartbeat batcher over its own pool."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any

import asyncpg

from server.store.postgres import PostgresJobStore
from server.store.postgres.heartbeat_batch import HeartbeatBatcher
from server.store.postgres.progress_batch import ProgressBatcher
from tests.support.postgres import opened_postgres_store

BACKLOG = 5


def opened(dsn: str, **options: Any) -> AbstractAsyncContextManager[PostgresJobStore]:
    """A Postgres store over ``dsn`` keeping :data:`BACKLOG` events per job."""
    return opened_postgres_store(dsn, backlog_size=BACKLOG, **options)


def heartbeat_batcher_of(store: PostgresJobStore) -> HeartbeatBatcher:
    batcher = store.heartbeat_batcher
    assert batcher is not None, "batching is off"
    return batcher


def progress_batcher_of(store: PostgresJobStore) -> ProgressBatcher:
    batcher = store.progress_batcher
    assert batcher is not None, "batching is off"
    return batcher


@contextlib.asynccontextmanager
async def pooled_heartbeat_batcher(dsn: str, **options: Any) -> AsyncIterator[HeartbeatBatcher]:
    """A :class:`HeartbeatBatcher` on a pool of its own (no store), closed after."""
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    batcher = HeartbeatBatcher(pool.acquire, **options)
    try:
        yield batcher
    finally:
        await batcher.close()
        await pool.close()


async def heartbeat_all(
    batcher: HeartbeatBatcher, jobs: list[tuple[str, str]], within: float
) -> list[bool]:
    """Every job's heartbeat at once, (id, lease) each; their answers."""
    beats = (batcher.submit(job_id, lease) for job_id, lease in jobs)
    return await asyncio.wait_for(asyncio.gather(*beats), within)
