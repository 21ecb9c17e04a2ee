"""Scratch PostgreSQL databases, shared by the tests and the benchmarks by design.

It imports neither pytest nor a test module: ``tests/support/postgres.py`` (the pytest
plugin) and ``scripts/bench`` both build on it. The server comes from
``JOBSPINE_TEST_DATABASE_URL`` (a ``postgresql://`` URL to any existing database of a role
that may create databases; default ``postgresql://postgres@127.0.0.1:5432/postgres``).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

BASE_DSN_ENV = "JOBSPINE_TEST_DATABASE_URL"
DEFAULT_BASE_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
CONNECT_TIMEOUT_S = 10.0


def base_dsn() -> str:
    return os.environ.get(BASE_DSN_ENV) or DEFAULT_BASE_DSN


def dsn_for(database: str, base: str | None = None) -> str:
    """``base`` (the server of :func:`base_dsn` by default) pointing at ``database``."""
    parts = urlsplit(base or base_dsn())
    return urlunsplit(parts._replace(path="/" + database))


def quote(name: str) -> str:
    """``name`` as an SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


@contextlib.asynccontextmanager
async def connected(dsn: str) -> AsyncIterator[asyncpg.Connection[Any]]:
    """A plain connection to ``dsn``, closed on the way out."""
    conn = await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT_S)
    try:
        yield conn
    finally:
        await conn.close()


async def drop_with(admin: asyncpg.Connection[Any], name: str) -> None:
    """Drop ``name`` through ``admin`` even when connections to it are still open."""
    await admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = $1 AND pid <> pg_backend_pid()",
        name,
    )
    await admin.execute(f"DROP DATABASE IF EXISTS {quote(name)} WITH (FORCE)")


@contextlib.asynccontextmanager
async def scratch_database(
    label: str, *, base: str | None = None, template: str = "template0"
) -> AsyncIterator[str]:
    """A new database (a copy of ``template``) beside ``base``'s; its URL. Dropped on the
    way out, open connections and all."""
    admin_dsn = base or base_dsn()
    name = f"jobspine_{label}_{uuid.uuid4().hex[:10]}"
    async with connected(admin_dsn) as admin:
        await admin.execute(f"CREATE DATABASE {quote(name)} TEMPLATE {quote(template)}")
    try:
        yield dsn_for(name, admin_dsn)
    finally:
        async with connected(admin_dsn) as admin:
            await drop_with(admin, name)
