"""Scratch PostgreSQL databases for the bench: created fresh, dropped at the end."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

DEFAULT_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
PREFIX = "jobspine_bench_"


def admin_dsn() -> str:
    return os.environ.get("JOBSPINE_TEST_DATABASE_URL") or DEFAULT_ADMIN_DSN


def dsn_for(base: str, database: str) -> str:
    parts = urlsplit(base)
    return urlunsplit(parts._replace(path=f"/{database}"))


def quote(name: str) -> str:
    """``name`` as an SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


@contextlib.asynccontextmanager
async def connection(dsn: str) -> AsyncIterator[asyncpg.Connection[Any]]:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        yield conn
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def scratch_database(base: str, label: str) -> AsyncIterator[str]:
    """A new empty database beside ``base``'s; its URL. Dropped on exit, connections and all."""
    name = f"{PREFIX}{label}_{uuid.uuid4().hex[:10]}"
    async with connection(base) as admin:
        await admin.execute(f"CREATE DATABASE {quote(name)}")
    try:
        yield dsn_for(base, name)
    finally:
        async with connection(base) as admin:
            await admin.execute(f"DROP DATABASE IF EXISTS {quote(name)} WITH (FORCE)")
