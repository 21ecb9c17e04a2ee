"""Helpers for worker-SDK tests against the real in-process server: SDK workers with fast
settings, running them for a block, REST views of a job and waiting on them by condition,
and :class:`RestartableServer` (a server that can be restarted over a store that outlives
it).

The app runs in-process on a real port (the fixtures of ``tests/support/server.py``); the
workers are the SDK's, over real Socket.IO. Waits are conditions with deadlines."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime
from typing import Any

import attrs
from aiohttp import web

from server.app import close_client_connections, create_app
from server.auth import mint_token
from server.config import load_settings as load_server_settings
from server.keys import SUPERVISOR
from server.store.base import JobStore
from server.store.memory import MemoryJobStore
from server.supervisor import Supervisor
from tests.support.processes import free_port
from tests.support.server import TEST_BACKLOG, TEST_SECRET, LiveServer, StartServer
from tests.support.staleness import ManualClock
from workers.examples import EXAMPLE_HANDLERS
from workers.examples import steps as examples_steps
from workers.sdk.config import WorkerConfig
from workers.sdk.worker import Worker, WorkerStopped
from workers.testing import FakeJobContext, wait_until

#: Long: no job turns stale by itself, however slow the machine; tests age heartbeats.
HEARTBEAT_TIMEOUT_S = 60.0
#: What a test moves the store's clock by to make a silent job stale.
STALE_BY_S = HEARTBEAT_TIMEOUT_S + 1
SUPERVISED_SERVER = {
    "HEARTBEAT_TIMEOUT_S": str(HEARTBEAT_TIMEOUT_S),
    "SUPERVISOR_INTERVAL_S": "0.1",
}
USER = "alice"


@attrs.frozen
class ClockedServer:
    """A server supervising with :data:`HEARTBEAT_TIMEOUT_S` over a memory store whose time
    moves only when the test moves ``clock``."""

    server: LiveServer
    clock: ManualClock

    @property
    def supervisor(self) -> Supervisor:
        """The app's own supervisor (it runs from start-up)."""
        supervisor = self.server.app[SUPERVISOR]
        assert supervisor.status.running
        return supervisor

    async def recovered_as_stale(self, job_id: str, state: str) -> dict[str, Any]:
        """Age heartbeats past the timeout and tick the supervisor until ``job_id`` is in
        ``state``; a heartbeat that lands between ageing and tick makes it try again."""

        async def check() -> bool:
            self.clock.advance(STALE_BY_S)
            await self.supervisor.tick()
            return bool((await get_job(self.server, job_id))["state"] == state)

        await wait_until(check, within_s=10.0, interval=0.02, what=f"{state} as stale")
        return await get_job(self.server, job_id)


async def start_clocked(start_server: StartServer) -> ClockedServer:
    """A :class:`ClockedServer` (stopped with the ``start_server`` fixture)."""
    clock = ManualClock()
    store = MemoryJobStore(backlog_size=TEST_BACKLOG, clock=clock)
    return ClockedServer(await start_server(env=SUPERVISED_SERVER, store=store), clock)


def sdk_worker(server: LiveServer, handlers: Mapping[str, Any], **config: Any) -> Worker:
    values: dict[str, Any] = {
        "url": server.url,
        "token": server.token("worker-1", "worker"),
        "heartbeat_interval_s": 0.1,
        "poll_interval_s": 0.05,
        "reconnect_initial_s": 0.05,
        "reconnect_max_s": 0.2,
        "grace_period_s": 5.0,
    }
    values.update(config)
    worker = Worker(WorkerConfig(**values))
    for job_type, handler in handlers.items():
        worker.register(job_type, handler)
    return worker


@contextlib.asynccontextmanager
async def running(worker: Worker) -> AsyncIterator[asyncio.Task[None]]:
    """Run ``worker`` for the block; stop it (gracefully) and wait for it afterwards."""
    task = asyncio.create_task(worker.run(), name="worker under test")
    try:
        yield task
    finally:
        worker.stop()
        with contextlib.suppress(WorkerStopped):
            await asyncio.wait_for(task, 30)


async def create_job(
    server: LiveServer, job_type: str, job_input: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    status, body = await server.rest(
        "POST",
        "/api/jobs",
        token=server.token(USER),
        json={"type": job_type, "input": job_input or {}},
    )
    assert status == 201, body
    job: dict[str, Any] = body
    return job


async def get_job(server: LiveServer, job_id: str) -> dict[str, Any]:
    status, body = await server.rest("GET", f"/api/jobs/{job_id}", token=server.token(USER))
    assert status == 200, body
    job: dict[str, Any] = body
    return job


async def act(server: LiveServer, job_id: str, action: str) -> dict[str, Any]:
    status, body = await server.rest(
        "POST", f"/api/jobs/{job_id}/{action}", token=server.token(USER)
    )
    assert status == 200, body
    job: dict[str, Any] = body
    return job


async def until_job(
    server: LiveServer,
    job_id: str,
    predicate: Callable[[dict[str, Any]], bool],
    *,
    within_s: float = 10.0,
    what: str = "job condition",
) -> dict[str, Any]:
    """Poll the job over REST until ``predicate`` holds; return that snapshot."""
    seen: list[dict[str, Any]] = []

    async def check() -> bool:
        seen.append(await get_job(server, job_id))
        return predicate(seen[-1])

    try:
        await wait_until(check, within_s=within_s, interval=0.02, what=what)
    except AssertionError:
        raise AssertionError(f"{what}: last seen {seen[-1] if seen else None}") from None
    return seen[-1]


def in_state(*states: str) -> Callable[[dict[str, Any]], bool]:
    return lambda job: job["state"] in states


def parse(at: str) -> datetime:
    return datetime.fromisoformat(at.replace("Z", "+00:00"))


async def uninterrupted_result(job_type: str, job_input: dict[str, Any]) -> Any:
    """What the example handler returns when nothing interrupts it (no server involved)."""
    saved = examples_steps.simulate_work

    async def no_wait(seconds: float) -> None:
        return None

    examples_steps.simulate_work = no_wait
    try:
        return await EXAMPLE_HANDLERS[job_type](FakeJobContext(job_type, job_input))
    finally:
        examples_steps.simulate_work = saved


@attrs.define
class RestartableServer:
    """The app on a fixed port over a store that outlives it, like a database: ``restart()``
    stops the server (clients lose their connections) and starts a new one in its place."""

    store: JobStore
    port: int = attrs.field(factory=free_port)
    runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def token(self, sub: str, role: str = "user") -> str:
        return mint_token(TEST_SECRET, sub=sub, role=role)

    async def start(self) -> None:
        settings = load_server_settings({"JWT_SECRET": TEST_SECRET})
        runner = web.AppRunner(create_app(settings, store=self.store), shutdown_timeout=2.0)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        self.runner = runner

    async def stop(self) -> None:
        if self.runner is not None:
            runner, self.runner = self.runner, None
            await close_client_connections(runner.app, 2.0)
            await runner.cleanup()
