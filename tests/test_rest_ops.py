"""The REST API on a real port, its operations side: health, readiness, metrics, and store
outages (a memory store switched off, a dropped PostgreSQL database) seen as ``unavailable``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, TypeVar
from urllib.parse import urlsplit

import pytest

from server.errors import Unavailable
from server.keys import READINESS_CHECKS, ReadinessCheck
from server.store.memory import MemoryJobStore
from tests.support.rest import assert_envelope, create_via_rest
from tests.support.server import TEST_BACKLOG, LiveServer, StartServer, connect_user, connect_worker

P = ParamSpec("P")
R = TypeVar("R")


async def test_health_readiness_and_metrics(live_server: LiveServer) -> None:
    assert await live_server.rest("GET", "/healthz") == (200, {"status": "ok"})
    status, ready = await live_server.rest("GET", "/readyz")
    assert status == 200
    assert ready["checks"] == ["store"]

    token = live_server.token("u1")
    await create_via_rest(live_server, token)
    user = await connect_user(live_server, "u1")
    await connect_worker(live_server)
    await user.refused("job:pause", {"job_id": "x"}, code="validation_error")
    await live_server.rest("GET", "/api/nothing", token=token)

    status, text = await live_server.rest("GET", "/metrics")
    assert status == 200
    assert isinstance(text, str)
    lines = text.splitlines()
    assert 'jobspine_jobs{state="created",type="research"} 1' in lines
    assert 'jobspine_job_transitions_total{from="none",to="created",type="research"} 1' in lines
    assert 'jobspine_sockets_connected{namespace="/"} 1' in lines
    assert 'jobspine_sockets_connected{namespace="/workers"} 1' in lines
    assert 'jobspine_events_emitted_total{type="job:created"} 1' in lines
    assert (
        'jobspine_socket_calls_total{event="job:pause",namespace="/",'
        'outcome="validation_error"} 1' in lines
    )
    assert 'jobspine_http_requests_total{method="POST",route="/api/jobs",status="201"} 1' in lines
    assert "# TYPE jobspine_socket_calls_total counter" in lines
    assert "jobspine_store_up 1" in lines


async def test_readiness_reports_a_failing_check(live_server: LiveServer) -> None:
    async def down() -> None:
        raise ConnectionError("redis is down")

    live_server.app[READINESS_CHECKS].append(ReadinessCheck(name="redis", probe=down))
    status, body = await live_server.rest("GET", "/readyz")
    assert status == 503
    assert assert_envelope(body, "unavailable")["details"] == {"failed": ["redis"]}
    assert (await live_server.rest("GET", "/healthz"))[0] == 200


def _fails_when_down(
    method: Callable[Concatenate[MemoryJobStore, P], Awaitable[R]],
) -> Callable[Concatenate[OutageStore, P], Coroutine[Any, Any, R]]:
    """``method`` of the memory store, raising ``Unavailable`` while the store is down."""

    async def guarded(store: OutageStore, /, *args: P.args, **kwargs: P.kwargs) -> R:
        if store.down:
            raise Unavailable()
        return await method(store, *args, **kwargs)

    return guarded


class OutageStore(MemoryJobStore):
    """A memory store that can be switched off: then every call raises ``Unavailable``."""

    down = False

    _apply = _fails_when_down(MemoryJobStore._apply)
    _insert = _fails_when_down(MemoryJobStore._insert)
    _claim = _fails_when_down(MemoryJobStore._claim)
    heartbeat = _fails_when_down(MemoryJobStore.heartbeat)
    get = _fails_when_down(MemoryJobStore.get)
    read_stream = _fails_when_down(MemoryJobStore.read_stream)
    list_jobs = _fails_when_down(MemoryJobStore.list_jobs)
    count_by_state = _fails_when_down(MemoryJobStore.count_by_state)
    count_by_state_and_type = _fails_when_down(MemoryJobStore.count_by_state_and_type)
    ping = _fails_when_down(MemoryJobStore.ping)


async def test_a_store_outage_is_unavailable_everywhere_and_passes(
    start_server: StartServer,
) -> None:
    store = OutageStore(backlog_size=TEST_BACKLOG)
    server = await start_server(store=store)
    token = server.token("u1")
    job = await create_via_rest(server, token)
    user = await connect_user(server, "u1")
    worker = await connect_worker(server)

    store.down = True
    for method, path in [
        ("GET", "/api/jobs"),
        ("GET", f"/api/jobs/{job['id']}"),
        ("POST", f"/api/jobs/{job['id']}/pause"),
        ("GET", "/api/stats"),
    ]:
        status, body = await server.rest(method, path, token=token)
        assert status == 503, path
        assert_envelope(body, "unavailable")
    status, body = await server.rest("POST", "/api/jobs", token=token, json={"type": "t"})
    assert status == 503
    await user.refused("job:create", {"type": "t"}, code="unavailable")
    await user.refused("job:subscribe", {"job_id": job["id"]}, code="unavailable")
    await worker.refused("claim", {}, code="unavailable")
    assert (await server.rest("GET", "/readyz"))[0] == 503
    assert (await server.rest("GET", "/healthz"))[0] == 200
    status, metrics = await server.rest("GET", "/metrics")
    assert status == 200
    assert "jobspine_store_up 0" in metrics.splitlines()

    store.down = False
    assert (await server.rest("GET", "/readyz"))[0] == 200
    assert (await user.ok("job:subscribe", {"job_id": job["id"]}))["job"]["seq"] == 1
    assert (await worker.ok("claim", {}))["job"]["id"] == job["id"]


@pytest.mark.postgres
async def test_a_dropped_database_is_an_outage_not_an_internal_error(
    start_server: StartServer, postgres_dsn: str
) -> None:
    from tests.support.postgres import drop_database, opened_postgres_store

    async with opened_postgres_store(postgres_dsn, backlog_size=TEST_BACKLOG) as store:
        server = await start_server(store=store)
        token = server.token("u1")
        job = await create_via_rest(server, token)
        await drop_database(urlsplit(postgres_dsn).path.lstrip("/"))
        for _ in range(3):  # the pool's lost connections first, then failed reconnects
            status, body = await server.rest("GET", f"/api/jobs/{job['id']}", token=token)
            assert status == 503, body
            assert_envelope(body, "unavailable")
        assert (await server.rest("GET", "/readyz"))[0] == 503
