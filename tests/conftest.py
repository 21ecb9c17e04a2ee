from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from server.store.base import JobStore

# A plugin imported (by another plugin) before pytest registers it would not get assert
# rewriting: tests.support.server before tests.support.redis.
pytest_plugins = ["tests.support.postgres", "tests.support.server", "tests.support.redis"]


@pytest.fixture(params=["memory", "postgres"])
def store_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
async def store(request: pytest.FixtureRequest, store_kind: str) -> AsyncIterator[JobStore]:
    """Each store implementation in turn: both pass one contract suite."""
    # Imported here: a plugin imported before pytest loads it would not get assert rewriting.
    from tests.support.server import opened_store

    async with opened_store(store_kind, request) as opened:
        yield opened
