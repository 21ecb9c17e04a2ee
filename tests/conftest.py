from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest

from server.service import JobRepository
from server.store.base import JobStore

if TYPE_CHECKING:
    from tests.support.server import LiveServer, StartServer

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


@pytest.fixture
def repo(store: JobStore) -> JobRepository:
    """The store contract's repository (``contract_repo``) over each store in turn, for the
    ``tests/test_store_*.py`` suites; a module that needs other settings defines its own."""
    from tests.support.store_contract import contract_repo

    return contract_repo(store)


@pytest.fixture
def bus_settings(postgres_dsn: str, redis_url: str, redis_channel: str) -> dict[str, str]:
    """The settings of an instance on this test's database, the shared Redis and this test's
    channel: instances started with them share one event bus."""
    from tests.support.redis_apps import bus_env

    return bus_env(postgres_dsn, redis_url, redis_channel)


@pytest.fixture
async def bus_instances(
    start_server: StartServer, bus_settings: dict[str, str]
) -> tuple[LiveServer, LiveServer]:
    """Two ready apps in this process on :func:`bus_settings`."""
    from tests.support.redis_apps import two_instances

    return await two_instances(start_server, bus_settings)
