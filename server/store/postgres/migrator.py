"""Apply the Postgres store's SQL migrations, in order, once, whoever starts first.

Every ``web`` process migrates at start, so several may race on one (possibly empty)
database. Each migration runs in its own transaction that first takes a transaction-level
advisory lock: the processes queue up, the first applies what is missing, the others then
find it recorded in ``schema_migrations`` and skip it. A failed migration rolls back whole
and leaves no row, so the next start retries it.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import logging
import re
from collections.abc import Sequence
from typing import Any, TypeAlias

import asyncpg
import attrs
from asyncpg.pool import PoolConnectionProxy

log = logging.getLogger(__name__)

#: A plain connection (the CLI, tests) or a pooled one (the store at start).
AnyConnection: TypeAlias = "asyncpg.Connection[Any] | PoolConnectionProxy[Any]"

MIGRATIONS_PACKAGE = "server.store.postgres.migrations"
_FILE_NAME = re.compile(r"(?P<version>\d{4})_(?P<name>\w+)\.sql")

#: Arbitrary but fixed: the advisory lock key every jobspine migrator takes.
MIGRATION_LOCK_KEY = 0x6A6F_6273_7069_6E65  # "jobspine" in ASCII, a positive bigint

_CREATE_HISTORY = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


@attrs.frozen(kw_only=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations() -> tuple[Migration, ...]:
    """Every migration shipped with the package, by version; refuse gaps and duplicates."""
    found: list[Migration] = []
    for entry in importlib.resources.files(MIGRATIONS_PACKAGE).iterdir():
        match = _FILE_NAME.fullmatch(entry.name)
        if match is None or not entry.is_file():
            continue
        found.append(
            Migration(
                version=int(match["version"]),
                name=match["name"],
                sql=entry.read_text(encoding="utf-8"),
            )
        )
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migrations must be numbered 0001, 0002, … without gaps: {versions}")
    return tuple(found)


def schema_fingerprint(migrations: Sequence[Migration] | None = None) -> str:
    """A short hash of the migrations: equal fingerprints mean equal schemas."""
    digest = hashlib.sha256()
    for migration in load_migrations() if migrations is None else migrations:
        digest.update(f"{migration.version}:{migration.name}\n".encode())
        digest.update(migration.sql.encode())
    return digest.hexdigest()[:16]


async def apply_migrations(
    conn: AnyConnection, migrations: Sequence[Migration] | None = None
) -> list[Migration]:
    """Apply the migrations ``conn``'s database lacks; return those this call applied."""
    applied: list[Migration] = []
    for migration in load_migrations() if migrations is None else migrations:
        if await _apply_one(conn, migration):
            applied.append(migration)
    return applied


async def _apply_one(conn: AnyConnection, migration: Migration) -> bool:
    async with conn.transaction():
        # Held until this transaction ends: concurrent migrators apply one at a time, and
        # the lock goes away with the connection should this process die.
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_KEY)
        await conn.execute(_CREATE_HISTORY)
        done = await conn.fetchval(
            "SELECT true FROM schema_migrations WHERE version = $1", migration.version
        )
        if done:
            return False
        log.info("applying migration %04d_%s", migration.version, migration.name)
        await conn.execute(migration.sql)
        await conn.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            migration.version,
            migration.name,
        )
        return True


async def migrate(dsn: str, *, connect_timeout: float = 10.0) -> list[Migration]:
    """Connect to ``dsn`` and apply what is missing (the CLI's and the tests' entry point)."""
    conn = await asyncpg.connect(dsn, timeout=connect_timeout)
    try:
        return await apply_migrations(conn)
    finally:
        await conn.close()


__all__ = [
    "MIGRATION_LOCK_KEY",
    "Migration",
    "apply_migrations",
    "load_migrations",
    "migrate",
    "schema_fingerprint",
]
