"""Pytest plugin: a fresh, migrated PostgreSQL database per test, in milliseconds.

Migrating a database takes a while; copying one does not. The session builds a template
database once by running the real migrator, and every test gets its own clone
(``CREATE DATABASE … TEMPLATE``), dropped afterwards. The template's name carries a hash of
the migration files, so a schema change builds a new one and an unchanged schema reuses the
template a previous session left behind.

Register it with ``pytest_plugins = ["tests.support.postgres"]`` in the root conftest.

The server comes from ``JOBSPINE_TEST_DATABASE_URL`` (a ``postgresql://`` URL to any existing
database of a role that may create databases; default
``postgresql://postgres@127.0.0.1:5432/postgres``). When it cannot be reached, the tests
that need it are skipped, or fail when ``CI=true``, so CI never passes by skipping them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any, NoReturn, TypeVar
from urllib.parse import urlsplit

import asyncpg
import attrs
import pytest

from server.store.postgres import PostgresJobStore
from server.store.postgres.migrator import migrate, schema_fingerprint
from server.store.postgres.pool import DEFAULT_POOL
from tests.support.databases import BASE_DSN_ENV, base_dsn, connected, drop_with, dsn_for, quote

CONNECT_TIMEOUT_S = 3.0
#: A store's pool that gives up on an unreachable server within a second.
QUICK_FAILING_POOL = attrs.evolve(DEFAULT_POOL, connect_timeout=1.0)
#: A store's pool of exactly one connection.
ONE_CONNECTION = attrs.evolve(DEFAULT_POOL, min_size=1, max_size=1)

TEMPLATE_PREFIX = "jobspine_template_"
TEST_DATABASE_PREFIX = "jobspine_test_"

T = TypeVar("T")

_UNREACHABLE_ERRORS = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
)


class PostgresUnreachable(Exception):
    """The test server cannot be reached; the tests needing it skip (or fail in CI)."""


def _unreachable(reason: object) -> NoReturn:
    server = urlsplit(base_dsn())
    message = (
        f"PostgreSQL at {server.hostname}:{server.port or 5432} is unreachable ({reason}); "
        f"start it or point {BASE_DSN_ENV} at one"
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@contextlib.asynccontextmanager
async def admin_connection() -> AsyncIterator[asyncpg.Connection[Any]]:
    """A connection to the test server's maintenance database."""
    try:
        conn = await asyncpg.connect(base_dsn(), timeout=CONNECT_TIMEOUT_S)
    except _UNREACHABLE_ERRORS as exc:
        raise PostgresUnreachable(str(exc) or type(exc).__name__) from exc
    try:
        yield conn
    finally:
        await conn.close()


async def create_database(name: str, template: str) -> None:
    """``name`` as a copy of ``template``: about 50 ms for a schema without data."""
    async with admin_connection() as admin:
        await admin.execute(f"CREATE DATABASE {quote(name)} TEMPLATE {quote(template)}")


async def drop_database(name: str) -> None:
    async with admin_connection() as admin:
        await drop_with(admin, name)


async def build_template() -> str:
    """The migrated template for the current migrations, built unless it already exists.

    It is built under a temporary name and renamed when complete, so an interrupted build
    never leaves a half-migrated template behind, and concurrent sessions agree on one.
    """
    name = TEMPLATE_PREFIX + schema_fingerprint()
    async with admin_connection() as admin:
        if await admin.fetchval("SELECT true FROM pg_database WHERE datname = $1", name):
            return name
        building = f"{name}_build_{uuid.uuid4().hex[:8]}"
        await admin.execute(f"CREATE DATABASE {quote(building)} TEMPLATE template0")
        try:
            await migrate(dsn_for(building))
            await admin.execute(f"ALTER DATABASE {quote(building)} RENAME TO {quote(name)}")
        except asyncpg.DuplicateDatabaseError:
            pass  # another session finished the same template first
        finally:
            await drop_with(admin, building)
        # Nobody may connect to it by accident: a connected template cannot be cloned.
        await admin.execute(
            f"ALTER DATABASE {quote(name)} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false"
        )
    return name


async def open_postgres_store(dsn: str, *, backlog_size: int, **options: Any) -> PostgresJobStore:
    """An opened store on ``dsn``; the caller closes it."""
    store = PostgresJobStore(dsn, backlog_size=backlog_size, **options)
    await store.open()
    return store


@contextlib.asynccontextmanager
async def opened_postgres_store(
    dsn: str, *, backlog_size: int, **options: Any
) -> AsyncIterator[PostgresJobStore]:
    """An opened store on ``dsn``, closed on the way out."""
    store = await open_postgres_store(dsn, backlog_size=backlog_size, **options)
    try:
        yield store
    finally:
        await store.close()


def run_blocking(work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``work()`` to completion on a loop of its own, in a thread of its own.

    The fixtures below are synchronous on purpose: they then work from sync tests, async
    tests, and from ``request.getfixturevalue`` inside an async fixture, where the test's
    loop is already running and cannot run anything else to completion.
    """
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as thread:
        done = thread.submit(lambda: asyncio.run(work()))
    return done.result()


@pytest.fixture(scope="session")
def postgres_template() -> str:
    """The migrated template database, built (or found) once per session."""
    try:
        return run_blocking(build_template)
    except PostgresUnreachable as exc:
        _unreachable(exc)


def _fresh_database_fixture(template: str) -> Iterator[str]:
    name = f"{TEST_DATABASE_PREFIX}{uuid.uuid4().hex[:16]}"
    try:
        run_blocking(lambda: create_database(name, template))
    except PostgresUnreachable as exc:
        _unreachable(exc)
    try:
        yield dsn_for(name)
    finally:
        # A server that went away meanwhile keeps the database; its prefix tells what it is.
        with contextlib.suppress(PostgresUnreachable):
            run_blocking(lambda: drop_database(name))


@pytest.fixture
def postgres_dsn(postgres_template: str) -> Iterator[str]:
    """The DSN of a fresh database with the current schema, for this test only."""
    yield from _fresh_database_fixture(postgres_template)


@pytest.fixture
def empty_postgres_dsn(postgres_template: str) -> Iterator[str]:
    """The DSN of a fresh database without any schema, for migrator tests. (It depends on
    the template only so that an unreachable server is detected once per session.)"""
    yield from _fresh_database_fixture("template0")


__all__ = [
    "BASE_DSN_ENV",
    "PostgresUnreachable",
    "admin_connection",
    "base_dsn",
    "build_template",
    "connected",
    "create_database",
    "drop_database",
    "dsn_for",
    "empty_postgres_dsn",
    "open_postgres_store",
    "postgres_dsn",
    "postgres_template",
    "run_blocking",
]
