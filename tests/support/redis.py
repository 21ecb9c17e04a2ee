"""Pytest plugin: Redis for the scaling tests.

- ``redis_url``: the shared test Redis (``JOBSPINE_TEST_REDIS_URL``, default
  ``redis://127.0.0.1:6379/0``), for tests that never stop it; pair it with
  ``redis_channel``, a channel of the test's own, so that concurrent sessions do not hear
  each other.
- ``private_redis``: a ``redis-server`` of the test's own on a free port, which the test may
  stop and start again (:class:`RedisServer`); it never touches the shared one.
- :class:`FreezingProxy`: a proxy in front of a Redis whose connections can go silent.

When Redis is unreachable or ``redis-server`` is not installed, the tests that need it are
skipped, or fail when ``CI=true``, so CI never passes by skipping them.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator
from typing import NoReturn
from urllib.parse import urlsplit

import pytest

from tests.support.processes import RedisServer, answers_ping, free_port

REDIS_URL_ENV = "JOBSPINE_TEST_REDIS_URL"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
#: How long a starting redis-server may take to answer PING.
START_TIMEOUT_S = 10.0


def _unavailable(message: str) -> NoReturn:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


class FreezingProxy:
    """A TCP proxy to a Redis server whose open connections can be frozen: they stay open
    and silently swallow everything both ways, as after a network partition that sent no
    reset. Connections opened after :meth:`freeze` pass through."""

    def __init__(self, target_port: int) -> None:
        self._target_port = target_port
        self._server: asyncio.Server | None = None
        self._frozen: set[int] = set()
        self._open: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.url = ""

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"redis://127.0.0.1:{port}/0"

    def freeze(self) -> int:
        """Freeze every connection open now; how many."""
        self._frozen |= self._open
        return len(self._open)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(
            "127.0.0.1", self._target_port
        )
        key = id(writer)
        self._open.add(key)
        for source, sink in ((reader, upstream_writer), (upstream_reader, writer)):
            task = asyncio.create_task(self._pump(key, source, sink))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(
        self, key: int, source: asyncio.StreamReader, sink: asyncio.StreamWriter
    ) -> None:
        try:
            while data := await source.read(65536):
                if key not in self._frozen:
                    sink.write(data)
                    await sink.drain()
        except OSError:
            pass
        finally:
            self._open.discard(key)
            sink.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()


@pytest.fixture
async def private_redis() -> AsyncIterator[RedisServer]:
    """A started ``redis-server`` for this test only, stopped afterwards."""
    binary = shutil.which("redis-server")
    if binary is None:
        _unavailable("redis-server is not installed (needed for the Redis restart tests)")
    server = RedisServer(binary, free_port(), within=START_TIMEOUT_S)
    try:
        await server.start()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def redis_url() -> str:
    """The shared test Redis, checked reachable; never stop it."""
    url = os.environ.get(REDIS_URL_ENV) or DEFAULT_REDIS_URL
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 6379
    if not answers_ping(host, port):
        _unavailable(
            f"Redis at {host}:{port} is unreachable; start it or point {REDIS_URL_ENV} at one"
        )
    return url


@pytest.fixture
def redis_channel() -> str:
    """A pub/sub channel for this test alone."""
    return f"jobspine-test-{uuid.uuid4().hex[:12]}"


__all__ = [
    "DEFAULT_REDIS_URL",
    "REDIS_URL_ENV",
    "FreezingProxy",
    "RedisServer",
    "answers_ping",
    "private_redis",
    "redis_channel",
    "redis_url",
]
