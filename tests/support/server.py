"""Pytest plugin: a real jobspine web server on a free port, and real clients for it.

Register with ``pytest_plugins = ["tests.support.server"]`` in the root conftest.

- ``live_server``: the app on a real port with the store of ``live_store`` (memory and
  Postgres in turn, backlog :data:`TEST_BACKLOG`), a secret, and a token factory.
- ``start_server``: a factory for servers with other settings (``JWT_AUDIENCE``,
  ``MAX_CHECKPOINT_BYTES``, …) or another store.
- :func:`connect_user` / :func:`connect_worker`: connected ``socketio.AsyncClient``\\ s,
  wrapped with an :class:`EventRecorder` of what they receive; the server disconnects them
  before it stops.
- :class:`EventRecorder`: ``await recorder.wait_for(predicate, timeout)`` wakes on each
  received event; no test sleeps to synchronise.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, TypedDict, Unpack

import aiohttp
import attrs
import jwt
import pytest
import socketio
from aiohttp import web

from server.app import close_client_connections, create_app
from server.auth import mint_token
from server.config import Settings, load_settings
from server.keys import REPOSITORY, STORE
from server.service import JobRepository
from server.store.base import JobStore
from server.store.memory import MemoryJobStore
from tests.support.processes import UNLIMITED_CALLS

#: Small so that falling out of the replay backlog is easy to provoke.
TEST_BACKLOG = 5
TEST_SECRET = "jobspine-test-secret-0123456789-abcdefghij"
#: Generous bound for one wait; a healthy run takes milliseconds.
TIMEOUT_S = 10.0

Event = tuple[str, Any]


class EventRecorder:
    """Everything a client received on one namespace, in order, with waiting by condition."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._changed = asyncio.Condition()

    async def record(self, name: str, data: Any) -> None:
        async with self._changed:
            self.events.append((name, data))
            self._changed.notify_all()

    async def wait_for(
        self, predicate: Callable[[list[Event]], bool], within: float = TIMEOUT_S
    ) -> list[Event]:
        """Wait until ``predicate(events)`` holds; fail after ``within`` seconds."""
        async with self._changed:
            try:
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: predicate(self.events)), within
                )
            except TimeoutError:
                pytest.fail(f"no such events within {within} s; received: {self.events!r}")
            return list(self.events)

    def of_job(self, job_id: str) -> list[dict[str, Any]]:
        """The job events received for ``job_id``, in order of arrival."""
        return [
            data
            for name, data in self.events
            if name.startswith("job:") and isinstance(data, dict) and data.get("job_id") == job_id
        ]

    async def wait_for_job_event(
        self, job_id: str, event_type: str, within: float = TIMEOUT_S
    ) -> dict[str, Any]:
        """The first ``event_type`` event of ``job_id``, waiting for it when necessary."""

        def seen(_: list[Event]) -> bool:
            return any(e["type"] == event_type for e in self.of_job(job_id))

        await self.wait_for(seen, within)
        return next(e for e in self.of_job(job_id) if e["type"] == event_type)


@attrs.define
class SocketClient:
    """A connected client of one namespace: calls with acks, and what it received."""

    sio: socketio.AsyncClient
    namespace: str
    events: EventRecorder

    async def call(self, event: str, *args: Any, within: float = TIMEOUT_S) -> Any:
        """Emit ``event`` with ``args`` (none, one payload, or several) and return the ack."""
        data: Any = None if not args else args[0] if len(args) == 1 else tuple(args)
        return await self.sio.call(event, data, namespace=self.namespace, timeout=within)

    async def ok(self, event: str, payload: Any, within: float = TIMEOUT_S) -> dict[str, Any]:
        """The ack of a call that must succeed."""
        ack = await self.call(event, payload, within=within)
        assert isinstance(ack, dict), ack
        assert ack.get("ok") is True, f"{event} failed: {ack!r}"
        return ack

    async def refused(self, event: str, *args: Any, code: str) -> dict[str, Any]:
        """The error of a call that must be refused with ``code``."""
        ack = await self.call(event, *args)
        assert isinstance(ack, dict), ack
        assert ack.get("ok") is False, f"{event} passed: {ack!r}"
        assert set(ack) == {"ok", "error"}, ack
        assert ack["error"]["code"] == code, ack
        assert isinstance(ack["error"]["message"], str)
        assert ack["error"]["message"]
        error: dict[str, Any] = ack["error"]
        return error

    @property
    def connected(self) -> bool:
        return bool(self.sio.connected) and self.namespace in self.sio.namespaces

    async def disconnect(self) -> None:
        await self.sio.disconnect()


class RequestBody(TypedDict, total=False):
    """What an HTTP call of :meth:`LiveServer.rest` may send besides its token."""

    json: Any
    data: bytes | str | None
    headers: Mapping[str, str] | None


@attrs.define
class LiveServer:
    url: str
    app: web.Application
    settings: Settings
    http: aiohttp.ClientSession
    secret: str = TEST_SECRET
    clients: list[SocketClient] = attrs.field(factory=list)

    @property
    def repository(self) -> JobRepository:
        return self.app[REPOSITORY]

    @property
    def store(self) -> JobStore:
        return self.app[STORE]

    def token(self, sub: str = "u1", role: str = "user", ttl: float = 3600) -> str:
        return mint_token(
            self.secret,
            sub=sub,
            role=role,
            ttl_s=ttl,
            audience=self.settings.jwt.audience,
            issuer=self.settings.jwt.issuer,
        )

    def raw_token(self, claims: Mapping[str, Any], key: str | None = None, **options: Any) -> str:
        """A token with exactly ``claims`` (``options`` go to ``jwt.encode``)."""
        options.setdefault("algorithm", "HS256")
        return jwt.encode(dict(claims), self.secret if key is None else key, **options)

    async def rest(
        self, method: str, path: str, *, token: str | None = None, **request: Unpack[RequestBody]
    ) -> tuple[int, Any]:
        """``(status, decoded JSON body)`` of one HTTP call."""
        sent = dict(request.get("headers") or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        json, data = request.get("json"), request.get("data")
        async with self.http.request(
            method, self.url + path, json=json, data=data, headers=sent
        ) as response:
            body = await response.read()
            if response.content_type == "application/json":
                return response.status, await response.json()
            return response.status, body.decode()

    async def assert_healthy(self) -> None:
        """The server still answers HTTP and a fresh socket's calls."""
        status, _ = await self.rest("GET", "/healthz")
        assert status == 200
        client = await connect_user(self, "health-check")
        ack = await client.ok("job:create", {"type": "health", "input": {}})
        assert ack["job"]["user_id"] == "health-check"
        await client.disconnect()


async def _connect(
    server: LiveServer, namespace: str, auth: Any, transports: list[str] | None = None
) -> SocketClient:
    sio = socketio.AsyncClient(reconnection=False)
    recorder = EventRecorder()

    async def any_event(event: str, *args: Any) -> None:
        await recorder.record(event, args[0] if len(args) == 1 else list(args))

    sio.on("*", any_event, namespace=namespace)
    client = SocketClient(sio=sio, namespace=namespace, events=recorder)
    await sio.connect(
        server.url,
        auth=auth,
        namespaces=[namespace],
        transports=transports,
        wait_timeout=TIMEOUT_S,
    )
    server.clients.append(client)
    return client


@contextlib.asynccontextmanager
async def connected(url: str, namespace: str, bearer: str) -> AsyncIterator[SocketClient]:
    """A client of ``namespace`` at ``url`` with token ``bearer``, recording every event."""
    sio = socketio.AsyncClient(reconnection=False)
    recorder = EventRecorder()

    async def any_event(event: str, *args: Any) -> None:
        await recorder.record(event, args[0] if len(args) == 1 else list(args))

    sio.on("*", any_event, namespace=namespace)
    await sio.connect(url, auth={"token": bearer}, namespaces=[namespace], wait_timeout=TIMEOUT_S)
    try:
        yield SocketClient(sio=sio, namespace=namespace, events=recorder)
    finally:
        await sio.disconnect()


async def connect_user(
    server: LiveServer,
    sub: str = "u1",
    *,
    role: str = "user",
    token: str | None = None,
    transports: list[str] | None = None,
) -> SocketClient:
    """A client connected to ``/`` as ``sub``."""
    auth = {"token": token if token is not None else server.token(sub, role)}
    return await _connect(server, "/", auth, transports)


async def connect_worker(
    server: LiveServer, sub: str = "worker-1", *, token: str | None = None
) -> SocketClient:
    """A client connected to ``/workers`` as worker ``sub``."""
    auth = {"token": token if token is not None else server.token(sub, "worker")}
    return await _connect(server, "/workers", auth)


async def refusal(server: LiveServer, namespace: str, auth: Any) -> Any:
    """The ``connect_error`` data a refused connection gets (the JS client's ``err.data``)."""
    return await refusal_at(server.url, namespace, auth)


async def refusal_at(url: str, namespace: str, auth: Any) -> Any:
    """:func:`refusal` from the server at ``url`` (a web process, say)."""
    sio = socketio.AsyncClient(reconnection=False)
    received: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    async def connect_error(data: Any = None) -> None:
        if not received.done():
            received.set_result(data)

    sio.on("connect_error", connect_error, namespace=namespace)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await sio.connect(url, auth=auth, namespaces=[namespace], wait_timeout=TIMEOUT_S)
    try:
        error = await asyncio.wait_for(received, TIMEOUT_S)
    finally:
        await sio.disconnect()
    assert isinstance(error, dict), error
    assert set(error) == {"message", "data"}, error
    return error["data"]


@contextlib.asynccontextmanager
async def running_server(
    env: Mapping[str, str] | None = None, store: JobStore | None = None
) -> AsyncIterator[LiveServer]:
    """The app on 127.0.0.1 and a free port; a ``store`` given is used as is."""
    environ = {
        "JWT_SECRET": TEST_SECRET,
        "BACKLOG_SIZE": str(TEST_BACKLOG),
        **UNLIMITED_CALLS,
        **(env or {}),
    }
    if store is not None:
        environ["BACKLOG_SIZE"] = str(store.backlog_size)
    settings = load_settings(environ)
    app = create_app(settings, store=store)
    runner = web.AppRunner(app, shutdown_timeout=5.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        async with aiohttp.ClientSession() as http:
            server = LiveServer(url=f"http://{host}:{port}", app=app, settings=settings, http=http)
            try:
                yield server
            finally:
                for client in server.clients:
                    await client.disconnect()
                await close_client_connections(app, 5.0)
    finally:
        await runner.cleanup()


StartServer = Callable[..., Awaitable[LiveServer]]


@pytest.fixture
async def start_server() -> AsyncIterator[StartServer]:
    """``await start_server(env={…}, store=…)``: a :class:`LiveServer`, stopped after the test
    (the memory store by default)."""
    async with contextlib.AsyncExitStack() as stack:

        async def start(
            env: Mapping[str, str] | None = None, store: JobStore | None = None
        ) -> LiveServer:
            return await stack.enter_async_context(running_server(env, store))

        yield start


@contextlib.asynccontextmanager
async def opened_store(kind: str, request: pytest.FixtureRequest) -> AsyncIterator[JobStore]:
    """The ``kind`` store (``memory``, or ``postgres`` on a fresh database), opened with a
    backlog of :data:`TEST_BACKLOG` events, closed on the way out."""
    if kind == "memory":
        store: JobStore = MemoryJobStore(backlog_size=TEST_BACKLOG)
    else:
        from tests.support.postgres import open_postgres_store

        dsn = request.getfixturevalue("postgres_dsn")
        store = await open_postgres_store(dsn, backlog_size=TEST_BACKLOG)
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture(
    params=["memory", pytest.param("postgres", marks=pytest.mark.postgres)],
)
async def live_store(request: pytest.FixtureRequest) -> AsyncIterator[JobStore]:
    """Each store in turn, opened, with a backlog of :data:`TEST_BACKLOG` events."""
    async with opened_store(request.param, request) as store:
        yield store


@pytest.fixture
async def live_server(live_store: JobStore) -> AsyncIterator[LiveServer]:
    """The web app on a real port over ``live_store``."""
    async with running_server(store=live_store) as server:
        yield server


__all__ = [
    "TEST_BACKLOG",
    "TEST_SECRET",
    "EventRecorder",
    "LiveServer",
    "SocketClient",
    "StartServer",
    "connect_user",
    "connect_worker",
    "live_server",
    "live_store",
    "refusal",
    "running_server",
    "start_server",
]
