from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from server.store.base import JobStore
from server.store.memory import MemoryJobStore

pytest_plugins = ["tests.support.postgres", "tests.support.redis", "tests.support.server"]

#: Small so trimming is easy to observe.
TEST_BACKLOG = 5


@pytest.fixture(params=["memory", "postgres"])
def store_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
async def store(request: pytest.FixtureRequest, store_kind: str) -> AsyncIterator[JobStore]:
    """Each store implementation in turn: both pass one contract suite."""
    if store_kind == "memory":
        opened: JobStore = MemoryJobStore(backlog_size=TEST_BACKLOG)
    else:
        from tests.support.postgres import open_postgres_store

        dsn = request.getfixturevalue("postgres_dsn")
        opened = await open_postgres_store(dsn, backlog_size=TEST_BACKLOG)
    try:
        yield opened
    finally:
        await opened.close()
