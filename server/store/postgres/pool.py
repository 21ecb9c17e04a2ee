"""The store's connection pool: created (and the schema migrated) on first use, shared by
concurrent callers while it opens, and the single place where outages become
``Unavailable`` (:func:`~server.store.postgres.outages.unavailable_on_outage`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any, Final, TypeAlias

import asyncpg
import attrs
from asyncpg.pool import PoolConnectionProxy

from server.errors import Unavailable
from server.store.postgres.migrator import apply_migrations
from server.store.postgres.outages import OUTAGE_ERRORS, unavailable_on_outage

#: What the pool hands out (a string: asyncpg classes are not subscriptable at runtime).
Connection: TypeAlias = "PoolConnectionProxy[asyncpg.Record]"


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


async def _init_connection(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    """json/jsonb columns take and give Python objects."""
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(
            type_name, encoder=_dumps, decoder=json.loads, schema="pg_catalog"
        )


async def _keep_session(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    """The pool's reset of a released connection, without its round trip.

    asyncpg's default reset sends ``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET
    ALL`` on every release: one more round trip per checkout (7-9% of a Postgres profile,
    docs/performance.md). The store leaves no session state behind: its advisory locks are
    transaction-level, it never LISTENs nor declares cursors, and its one setting
    (``synchronous_commit`` of heartbeats) is ``set_config(…, true)``, local to the
    statement's transaction. asyncpg still rolls back a transaction left open (a cancelled
    caller) before calling this.
    """


@attrs.frozen(kw_only=True)
class PoolOptions:
    """The store's connections: how many, and how long each step may take (seconds)."""

    min_size: int
    max_size: int
    connect_timeout: float
    command_timeout: float
    acquire_timeout: float


#: What a store connects with unless told otherwise.
DEFAULT_POOL: Final = PoolOptions(
    min_size=1, max_size=10, connect_timeout=5.0, command_timeout=10.0, acquire_timeout=5.0
)


class StorePool:
    """An asyncpg pool opened lazily: a failed open is retried by whichever call comes next."""

    def __init__(self, dsn: str, options: PoolOptions) -> None:
        self._dsn = dsn
        self._options = options
        self._pool: asyncpg.Pool[asyncpg.Record] | None = None
        self._opening: asyncio.Future[asyncpg.Pool[asyncpg.Record]] | None = None
        self._closed = False

    async def open(self) -> None:
        """Connect and migrate; ``Unavailable`` when Postgres is down (the pool stays usable:
        the next call tries again)."""
        with unavailable_on_outage():
            await self._ensure_pool()

    def closing(self) -> None:
        """Refuse new connections from now on (pending batches may still finish)."""
        self._closed = True
        if self._opening is not None:
            self._opening.cancel()

    async def close(self) -> None:
        self.closing()
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), timeout=self._options.command_timeout)
        except OUTAGE_ERRORS:
            pool.terminate()

    @contextlib.asynccontextmanager
    async def connection(self, acquire_timeout: float | None = None) -> AsyncIterator[Connection]:
        """A pooled connection; the single place where outages become ``Unavailable``."""
        with unavailable_on_outage():
            pool = await self._ensure_pool()
            async with pool.acquire(
                timeout=acquire_timeout or self._options.acquire_timeout
            ) as conn:
                yield conn

    @contextlib.asynccontextmanager
    async def transaction(self, **options: Any) -> AsyncIterator[Connection]:
        async with self.connection() as conn, conn.transaction(**options):
            yield conn

    async def _ensure_pool(self) -> asyncpg.Pool[asyncpg.Record]:
        """The pool, created (and the schema migrated) on first use.

        Concurrent callers share one attempt: while Postgres is down, a burst of requests
        costs one connection attempt, not one each in a queue.
        """
        if self._pool is not None:
            return self._pool
        if self._closed:
            raise Unavailable("the job store is closed")
        if self._opening is None:
            self._opening = asyncio.ensure_future(self._create_pool())
            self._opening.add_done_callback(self._pool_created)
        # Shielded: one caller giving up must not cancel the attempt the others wait for.
        return await asyncio.shield(self._opening)

    def _pool_created(self, attempt: asyncio.Future[asyncpg.Pool[asyncpg.Record]]) -> None:
        self._opening = None
        if attempt.cancelled() or attempt.exception() is not None:
            return  # (retrieving the exception keeps asyncio from logging it as lost)
        pool = attempt.result()
        if self._closed:
            pool.terminate()  # closed while connecting
        else:
            self._pool = pool

    async def _create_pool(self) -> asyncpg.Pool[asyncpg.Record]:
        pool = await asyncpg.create_pool(
            self._dsn,
            min_size=self._options.min_size,
            max_size=self._options.max_size,
            timeout=self._options.connect_timeout,
            command_timeout=self._options.command_timeout,
            init=_init_connection,
            reset=_keep_session,
            server_settings={"application_name": "jobspine", "jit": "off"},
        )
        try:
            async with pool.acquire(timeout=self._options.acquire_timeout) as conn:
                await apply_migrations(conn)
        except BaseException:
            pool.terminate()
            raise
        return pool


__all__ = ["DEFAULT_POOL", "Connection", "PoolOptions", "StorePool"]
