"""The worker SDK and lifecycle v2 against the real in-process server: RetryableError and
automatic retries, JobContext's attempt/retries/deadline, and the pushes (jobs:available
wakes an idle worker, lease:revoked cancels a handler, job:pause_requested raises the pause
at the next pause point). Heartbeats and polls are set to 30 s, so only a push can make a
condition hold before its deadline."""

from __future__ import annotations

import asyncio
from typing import Any

from server.keys import SIO
from tests.support.handlers import Forever
from tests.support.sdk_live import act, in_state, running, sdk_worker, until_job
from tests.support.server import LiveServer
from workers.sdk import JobContext, RetryableError
from workers.testing import wait_until

SLOW = {"poll_interval_s": 30.0, "heartbeat_interval_s": 30.0}


async def _create(server: LiveServer, body: dict[str, Any]) -> dict[str, Any]:
    status, job = await server.rest("POST", "/api/jobs", token=server.token("alice"), json=body)
    assert status == 201, job
    return dict(job)


async def test_a_retryable_error_is_retried_until_the_handler_succeeds(
    live_server: LiveServer,
) -> None:
    seen: list[tuple[int, int, bool]] = []

    async def flaky(ctx: JobContext) -> dict[str, Any]:
        seen.append((ctx.attempt, ctx.retries, ctx.deadline is not None))
        if ctx.retries < 2:
            raise RetryableError("upstream busy", code="upstream_busy")
        return {"tries": ctx.retries + 1}

    worker = sdk_worker(live_server, {"research": flaky})
    async with running(worker):
        job = await _create(
            live_server,
            {
                "type": "research",
                "timeout_s": 60,
                "retry": {"max_attempts": 3, "backoff_s": 0},
            },
        )
        done = await until_job(live_server, job["id"], in_state("completed", "failed"))
    assert done["state"] == "completed", done
    assert done["result"] == {"tries": 3}
    assert done["retries"] == 2
    assert seen == [(1, 0, True), (2, 1, True), (3, 2, True)]


async def test_an_idle_worker_claims_at_once_on_jobs_available(live_server: LiveServer) -> None:
    async def quick(ctx: JobContext) -> str:
        return "ok"

    worker = sdk_worker(live_server, {"research": quick}, **SLOW)
    async with running(worker):
        await worker.connection.wait_connected()

        async def idle() -> bool:  # its first claim came back empty
            return "idle:research" in live_server.app[SIO].local_rooms("/workers")

        await wait_until(idle, within_s=10)
        job = await _create(live_server, {"type": "research"})
        done = await until_job(live_server, job["id"], in_state("completed"), within_s=10)
    assert done["result"] == "ok"


async def test_a_cancel_reaches_the_running_handler_at_once(live_server: LiveServer) -> None:
    long = Forever()
    worker = sdk_worker(live_server, {"research": long}, **SLOW)
    async with running(worker):
        await worker.connection.wait_connected()
        job = await _create(live_server, {"type": "research"})
        await asyncio.wait_for(long.started.wait(), 10)
        await act(live_server, job["id"], "cancel")
        await asyncio.wait_for(long.cancelled.wait(), 10)


async def test_a_pause_request_is_raised_at_the_next_pause_point(live_server: LiveServer) -> None:
    started = asyncio.Event()

    async def long(ctx: JobContext) -> None:
        started.set()
        for _ in range(3000):  # 30 s unless paused
            await ctx.pause_point()
            await asyncio.sleep(0.01)

    worker = sdk_worker(live_server, {"research": long}, **SLOW)
    async with running(worker):
        await worker.connection.wait_connected()
        job = await _create(live_server, {"type": "research"})
        await asyncio.wait_for(started.wait(), 10)
        await act(live_server, job["id"], "pause")
        paused = await until_job(live_server, job["id"], in_state("paused"), within_s=10)
    assert paused["state"] == "paused"


async def test_the_sdk_refuses_what_the_server_would_and_the_job_fails_clearly(
    live_server: LiveServer,
) -> None:
    async def bad(ctx: JobContext) -> None:
        await ctx.checkpoint({"text": "a\x00b"})  # no store can hold NUL

    worker = sdk_worker(live_server, {"research": bad})
    async with running(worker):
        job = await _create(live_server, {"type": "research"})
        failed = await until_job(live_server, job["id"], in_state("failed", "completed"))
    assert failed["state"] == "failed"
    assert failed["error"]["code"] == "handler_error"
    assert "NUL" in failed["error"]["message"]
