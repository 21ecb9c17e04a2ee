"""The SDK worker's life against the real server: crash and resume, graceful stop within
the grace period, concurrency, a refused token, a server restart, and ``python -m workers``
stopping on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator

import aiohttp
import pytest

from jobspine_shared.states import JobState
from server.store.memory import MemoryJobStore
from tests.support.log_lines import log_messages
from tests.support.sdk_live import (
    USER,
    RestartableServer,
    act,
    create_job,
    get_job,
    in_state,
    running,
    sdk_worker,
    start_clocked,
    uninterrupted_result,
    until_job,
)
from tests.support.server import StartServer
from workers.examples import EXAMPLE_HANDLERS
from workers.sdk.config import WorkerConfig
from workers.sdk.context import JobContext
from workers.sdk.errors import AuthRefused
from workers.sdk.job_run import Outcome
from workers.sdk.worker import Worker, WorkerStopped
from workers.testing import wait_until


@pytest.mark.parametrize("how", ["graceful stop past the grace period", "crash"])
async def test_crash_and_resume_loop(start_server: StartServer, how: str) -> None:
    """A worker goes away mid-job; the supervisor pauses the stale job (it has a checkpoint);
    the user resumes it; another worker continues from the checkpoint to the same result."""
    clocked = await start_clocked(start_server)
    server = clocked.server
    job_input = {"dataset": "sensor-readings", "steps": 40, "step_seconds": 0.02}
    first = sdk_worker(server, EXAMPLE_HANDLERS, grace_period_s=0, shutdown_checkpoint_s=5)
    first_run = asyncio.create_task(first.run())
    job = await create_job(server, "analysis", job_input)
    # Past step 10's progress: the handler reports step k's progress before it checkpoints
    # step k, so a later report means step 10's checkpoint is stored.
    await until_job(server, job["id"], lambda j: j["progress"] > 25, what="progress")
    if how == "crash":
        first_run.cancel()  # no more writes, no goodbye: like a killed process
        with contextlib.suppress(asyncio.CancelledError):
            await first_run
    else:
        first.stop()
        await asyncio.wait_for(first_run, 10)
        assert first.outcomes == {Outcome.SHUTDOWN: 1}

    stalled = await clocked.recovered_as_stale(job["id"], "paused")
    status, options = await server.rest(
        "GET", f"/api/jobs/{job['id']}/recovery", token=server.token(USER)
    )
    assert status == 200, options
    assert options["resumable"] is True
    saved_steps = options["checkpoint"]["progress"] * 40 / 100

    await act(server, job["id"], "resume")
    async with running(sdk_worker(server, EXAMPLE_HANDLERS)):
        done = await until_job(server, job["id"], in_state("completed"), what="completed")

    assert stalled["recovery_attempts"] == 1
    assert saved_steps >= 10
    assert done["attempt"] == 2
    assert done["result"] == await uninterrupted_result("analysis", job_input)
    assert done["result"]["completed_steps"] == 40


async def test_a_finishing_handler_completes_within_the_grace_period(
    start_server: StartServer,
) -> None:
    server = await start_server()
    release, started = asyncio.Event(), asyncio.Event()

    async def handler(ctx: JobContext) -> str:
        started.set()
        await release.wait()
        return "finished during shutdown"

    worker = sdk_worker(server, {"graceful": handler}, grace_period_s=10)
    task = asyncio.create_task(worker.run())
    job = await create_job(server, "graceful")
    await asyncio.wait_for(started.wait(), 10)
    worker.stop()
    worker.stop()  # twice is fine
    other = await create_job(server, "graceful")  # not claimed any more
    release.set()
    await asyncio.wait_for(task, 15)

    assert (await get_job(server, job["id"]))["state"] == "completed"
    assert (await get_job(server, other["id"]))["state"] == "created"


async def test_concurrency_limits_the_jobs_held_at_once(start_server: StartServer) -> None:
    server = await start_server()
    release = asyncio.Event()
    active: list[str] = []
    most = 0

    async def handler(ctx: JobContext) -> None:
        nonlocal most
        active.append(ctx.job.id)
        most = max(most, len(active))
        await release.wait()
        active.remove(ctx.job.id)

    worker = sdk_worker(server, {"held": handler}, concurrency=2)
    async with running(worker):
        jobs = [await create_job(server, "held") for _ in range(3)]
        await wait_until(lambda: len(active) == 2, what="two running")
        assert (await get_job(server, jobs[2]["id"]))["state"] == "created"
        release.set()
        for job in jobs:
            await until_job(server, job["id"], in_state("completed"), what="completed")

    assert most == 2


async def test_a_refused_token_stops_the_worker(start_server: StartServer) -> None:
    server = await start_server()

    async def handler(ctx: JobContext) -> None:
        return None

    worker = sdk_worker(server, {"x": handler}, token=server.token("alice", "user"))
    with pytest.raises(WorkerStopped) as stopped:
        await asyncio.wait_for(worker.run(), 10)

    assert isinstance(stopped.value.__cause__, AuthRefused)
    assert stopped.value.__cause__.code == "forbidden"


@pytest.fixture
async def restartable() -> AsyncIterator[RestartableServer]:
    server = RestartableServer(store=MemoryJobStore(backlog_size=200))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def test_the_worker_reconnects_and_carries_on_after_a_server_restart(
    restartable: RestartableServer,
) -> None:
    release, started = asyncio.Event(), asyncio.Event()

    async def handler(ctx: JobContext) -> str:
        await ctx.checkpoint({"phase": 1})
        started.set()
        await release.wait()
        await ctx.progress(90, "after the restart")
        return "survived"

    worker = Worker(
        WorkerConfig(
            url=restartable.url,
            token=restartable.token("worker-1", "worker"),
            heartbeat_interval_s=0.1,
            reconnect_initial_s=0.05,
            reconnect_max_s=0.2,
        )
    )
    worker.register("durable", handler)
    async with running(worker):
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                restartable.url + "/api/jobs",
                json={"type": "durable", "input": {}},
                headers={"Authorization": f"Bearer {restartable.token(USER)}"},
            ) as response,
        ):
            job = await response.json()
        await asyncio.wait_for(started.wait(), 10)

        await restartable.stop()
        await wait_until(lambda: not worker.connection.connected, what="disconnected")
        await restartable.start()
        await wait_until(lambda: worker.connection.sessions == 2, what="reconnected")
        release.set()
        await wait_until(lambda: worker.outcomes[Outcome.COMPLETED] == 1, what="completed")

    stored = await restartable.store.get(job["id"])
    assert stored is not None
    assert stored.record.state is JobState.COMPLETED
    assert stored.record.result == "survived"


async def test_python_m_workers_runs_the_examples_and_stops_on_sigterm(
    start_server: StartServer,
) -> None:
    server = await start_server()
    env = {
        **os.environ,
        "JOBSPINE_URL": server.url,
        "JOBSPINE_TOKEN": server.token("worker-cli", "worker"),
        "WORKER_TYPES": "analysis,trade",
        "WORKER_CONCURRENCY": "2",
        "WORKER_HEARTBEAT_S": "0.2",
        "PYTHONUNBUFFERED": "1",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "workers",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        job = await create_job(server, "analysis", {"dataset": "d", "steps": 3, "step_seconds": 0})
        done = await until_job(server, job["id"], in_state("completed"), what="completed")
    finally:
        process.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(process.communicate(), 30)

    log = out.decode()
    assert process.returncode == 0, log
    assert done["result"]["completed_steps"] == 3
    # Text log lines end with their context (`` job_id=… worker_id=…``): the message is before.
    messages = log_messages(log)
    lines = [line for line in messages if job["id"] in line]
    assert len(lines) == 2, log
    assert lines[0].endswith("claimed, attempt 1")
    assert lines[1].endswith("completed")
    assert "worker" in messages[-1]
    assert messages[-1].endswith("stopped")
