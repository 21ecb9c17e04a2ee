"""The Postgres store's outages: an unreachable or hung database gives ``Unavailable``,
never a raw error, the store recovers by itself when the database comes back, and the pool
replaces terminated backends."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit, urlunsplit

import attrs
import pytest

from server.errors import Unavailable
from server.service import JobRepository
from server.store.model import JobFilter
from server.store.postgres import PostgresJobStore
from server.store.postgres.pool import DEFAULT_POOL
from tests.support.jobs import ALICE, create
from tests.support.postgres import (
    ONE_CONNECTION,
    QUICK_FAILING_POOL,
    connected,
    opened_postgres_store,
)
from tests.support.server import TEST_BACKLOG

UNREACHABLE_DSN = "postgresql://postgres@127.0.0.1:1/postgres"

STORE_CALLS: dict[str, Callable[[PostgresJobStore], Awaitable[object]]] = {
    "open": lambda store: store.open(),
    "ping": lambda store: store.ping(),
    "get": lambda store: store.get(str(uuid.uuid4())),
    "read_stream": lambda store: store.read_stream(str(uuid.uuid4()), 0),
    "heartbeat": lambda store: store.heartbeat(str(uuid.uuid4()), "L"),
    "claim": lambda store: store.claim(types=[], worker_id="w", lease="L"),
    "list_jobs": lambda store: store.list_jobs(JobFilter(), owner=None, limit=10, after=None),
    "count_by_state": lambda store: store.count_by_state(None),
    "count_active": lambda store: store.count_active("u1"),
    "find_stale": lambda store: store.find_stale(30.0, limit=10),
}


@pytest.mark.parametrize("call", sorted(STORE_CALLS))
async def test_an_unreachable_database_gives_unavailable_never_a_raw_error(call: str) -> None:
    store = PostgresJobStore(UNREACHABLE_DSN, backlog_size=TEST_BACKLOG, pool=QUICK_FAILING_POOL)
    try:
        with pytest.raises(Unavailable):
            await STORE_CALLS[call](store)
    finally:
        await store.close()


async def test_calls_during_an_outage_share_one_connection_attempt() -> None:
    """A server that accepts but never answers (a hung host): ten concurrent calls wait
    for one connection attempt, not for ten in a row."""
    accepted: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    store = PostgresJobStore(
        f"postgresql://postgres@127.0.0.1:{port}/postgres",
        backlog_size=TEST_BACKLOG,
        pool=attrs.evolve(DEFAULT_POOL, connect_timeout=0.3),
    )
    try:
        results = await asyncio.gather(
            *(store.get(str(uuid.uuid4())) for _ in range(10)), return_exceptions=True
        )
    finally:
        await store.close()
        server.close()
        for writer in accepted:
            writer.close()
        await server.wait_closed()

    assert [type(r) for r in results] == [Unavailable] * 10
    assert len(accepted) == 1


def through_port(dsn: str, port: int) -> str:
    parts = urlsplit(dsn)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host))


class Outage:
    """A TCP forwarder to Postgres that can be taken down and brought back on one port."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._pipes: set[asyncio.Task[None]] = set()
        self.port = 0

    async def up(self) -> None:
        self._server = await asyncio.start_server(self._forward, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def down(self) -> None:
        """Refuse new connections and cut the open ones, as a crashed server would."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in self._writers:
            writer.close()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        self._writers.update((writer, upstream_writer))
        for source, sink in ((reader, upstream_writer), (upstream_reader, writer)):
            pipe = asyncio.create_task(self._pipe(source, sink))
            self._pipes.add(pipe)
            pipe.add_done_callback(self._pipes.discard)

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        except OSError:
            pass
        finally:
            sink.close()


async def test_the_store_recovers_by_itself_after_an_outage(postgres_dsn: str) -> None:
    server = urlsplit(postgres_dsn)
    outage = Outage(server.hostname or "127.0.0.1", server.port or 5432)
    await outage.up()  # only to be given a free port
    await outage.down()
    store = PostgresJobStore(
        through_port(postgres_dsn, outage.port),
        backlog_size=TEST_BACKLOG,
        pool=attrs.evolve(DEFAULT_POOL, connect_timeout=2.0),
    )
    try:
        with pytest.raises(Unavailable):
            await store.open()  # down from the start: open fails, the store stays usable

        await outage.up()
        repo = JobRepository(store)
        job = await create(repo)  # the pool is created (and the schema checked) lazily

        await outage.down()
        with pytest.raises(Unavailable):
            await repo.get_job(ALICE, job.id)
        with pytest.raises(Unavailable):
            await store.ping()

        await outage.up()
        assert await repo.get_job(ALICE, job.id) == job
        await store.ping()
    finally:
        await store.close()
        await outage.down()


async def test_terminated_backends_are_replaced(postgres_dsn: str) -> None:
    """A Postgres restart ends every backend: the pool reconnects, and at most the first
    call, should it meet the dead connection, fails, with ``Unavailable``."""
    async with opened_postgres_store(
        postgres_dsn, backlog_size=TEST_BACKLOG, pool=ONE_CONNECTION
    ) as store:
        repo = JobRepository(store)
        job = await create(repo)
        async with connected(postgres_dsn) as admin:
            ended = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        assert ended == 1
        with contextlib.suppress(Unavailable):
            await repo.get_job(ALICE, job.id)
        assert await repo.get_job(ALICE, job.id) == job
