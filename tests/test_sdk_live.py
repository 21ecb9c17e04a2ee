"""The whole SDK worker against the real in-process server: results and failures reach the
job, heartbeats keep it alive, pauses, cancels and supervisor recovery stop the handler,
progress is coalesced."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import pytest

from tests.support.handlers import Forever
from tests.support.sdk_live import (
    HEARTBEAT_TIMEOUT_S,
    USER,
    act,
    create_job,
    get_job,
    in_state,
    parse,
    running,
    sdk_worker,
    start_clocked,
    uninterrupted_result,
    until_job,
)
from tests.support.server import LiveServer, StartServer, connect_user, connect_worker
from workers.examples import EXAMPLE_HANDLERS
from workers.sdk.context import JobContext
from workers.sdk.job_run import Outcome
from workers.testing import wait_until


async def test_a_handler_result_completes_the_job(live_server: LiveServer) -> None:
    watcher = await connect_user(live_server, USER)

    async def handler(ctx: JobContext) -> dict[str, Any]:
        await ctx.progress(50, "step 1/2: half way")
        await ctx.progress(75, "step 2/2: nearly")
        return {"echo": ctx.job.input["text"], "attempt": ctx.job.attempt}

    worker = sdk_worker(live_server, {"echo": handler})
    async with running(worker):
        job = await create_job(live_server, "echo", {"text": "hi"})
        done = await until_job(live_server, job["id"], in_state("completed"), what="completed")

    assert done["result"] == {"echo": "hi", "attempt": 1}
    assert done["progress"] == 100.0
    await watcher.events.wait_for_job_event(job["id"], "job:completed")
    kinds = [(e["type"], e["data"].get("progress")) for e in watcher.events.of_job(job["id"])]
    assert kinds[-3:] == [("job:progress", 50.0), ("job:progress", 75.0), ("job:completed", None)]
    assert worker.outcomes == {Outcome.COMPLETED: 1}


async def test_a_handler_exception_fails_the_job_with_its_message(live_server: LiveServer) -> None:
    async def handler(ctx: JobContext) -> None:
        raise RuntimeError("the data source refused the query")

    async with running(sdk_worker(live_server, {"boom": handler})):
        job = await create_job(live_server, "boom")
        failed = await until_job(live_server, job["id"], in_state("failed"), what="failed")

    assert failed["error"] == {
        "code": "handler_error",
        "message": "the data source refused the query",
        "retryable": False,
    }


async def test_invalid_example_input_fails_the_job_with_a_clear_message(
    start_server: StartServer,
) -> None:
    server = await start_server()
    async with running(sdk_worker(server, EXAMPLE_HANDLERS)):
        job = await create_job(server, "trade", {"symbol": "ACME", "quantity": -3})
        failed = await until_job(server, job["id"], in_state("failed"), what="failed")

    assert failed["error"]["message"] == (
        "invalid input: quantity must be an integer from 1 to 1000000000, got -3"
    )


def beaten_at(due: datetime) -> Callable[[dict[str, Any]], bool]:
    """Whether a running job's last heartbeat is at ``due`` or later."""

    def beaten(snapshot: dict[str, Any]) -> bool:
        assert snapshot["state"] == "running", snapshot
        return parse(snapshot["last_heartbeat_at"]) >= due

    return beaten


async def test_heartbeats_keep_a_slow_handler_alive_past_the_timeout(
    start_server: StartServer,
) -> None:
    """Store time moves half a timeout at a time, and each step waits for a heartbeat at the
    new time: a job that was not kept alive by them would be stale after two steps."""
    clocked = await start_clocked(start_server)
    server = clocked.server
    release = asyncio.Event()

    async def slow(ctx: JobContext) -> str:
        await release.wait()  # "computes" without reporting anything
        return "done"

    async with running(sdk_worker(server, {"slow": slow})):
        job = await create_job(server, "slow")
        started = await until_job(server, job["id"], in_state("running"), what="running")
        for _ in range(10):
            due = clocked.clock.advance(HEARTBEAT_TIMEOUT_S / 2)
            await until_job(server, job["id"], beaten_at(due), what="a heartbeat at the new time")
            report = await clocked.supervisor.tick()
            assert (report.paused, report.failed) == (0, 0)
        alive = await get_job(server, job["id"])
        beat, began = parse(alive["last_heartbeat_at"]), parse(started["started_at"])
        assert (beat - began).total_seconds() > 4 * HEARTBEAT_TIMEOUT_S
        release.set()
        done = await until_job(server, job["id"], in_state("completed"), what="completed")

    assert done["result"] == "done"
    assert done["recovery_attempts"] == 0


async def test_a_job_without_heartbeats_is_recovered_by_the_supervisor(
    start_server: StartServer,
) -> None:
    """The control for the test above: the same server fails a silent job."""
    clocked = await start_clocked(start_server)
    job = await create_job(clocked.server, "slow")
    raw = await connect_worker(clocked.server)
    await raw.ok("claim", {"types": ["slow"]})

    failed = await clocked.recovered_as_stale(job["id"], "failed")

    assert failed["error"]["code"] == "worker_lost"


async def test_pause_request_checkpoint_paused_then_resume_continues(
    live_server: LiveServer,
) -> None:
    job_input = {"query": "sodium batteries", "steps": 30, "step_seconds": 0.02}
    watcher = await connect_user(live_server, USER)
    worker = sdk_worker(live_server, EXAMPLE_HANDLERS)
    async with running(worker):
        job = await create_job(live_server, "research", job_input)
        await until_job(live_server, job["id"], lambda j: j["progress"] >= 20, what="progress")
        await act(live_server, job["id"], "pause")
        paused = await until_job(live_server, job["id"], in_state("paused"), what="paused")
        status, saved = await live_server.rest(
            "GET", f"/api/jobs/{job['id']}/checkpoint", token=live_server.token(USER)
        )
        assert status == 200, saved
        done_steps = saved["data"]["completed_steps"]
        assert 0 < done_steps < 30

        await act(live_server, job["id"], "resume")
        done = await until_job(live_server, job["id"], in_state("completed"), what="completed")

    assert paused["has_checkpoint"]
    assert paused["progress"] == pytest.approx(100 * done_steps / 30)
    assert done["attempt"] == 2
    assert done["result"] == await uninterrupted_result("research", job_input)
    events = watcher.events.of_job(job["id"])
    paused_event = next(e for e in events if e["type"] == "job:paused")
    assert paused_event["data"]["reason"] == "user"
    restarted = [e for e in events if e["type"] == "job:started"]
    assert [e["data"]["resumed"] for e in restarted] == [False, True]
    after_resume = [e for e in events if e["seq"] > restarted[1]["seq"]]
    first_step = next(e for e in after_resume if e["type"] == "job:progress")
    assert first_step["data"]["step"].startswith(f"step {done_steps + 1}/30: ")
    assert worker.outcomes == {Outcome.PAUSED: 1, Outcome.COMPLETED: 1}


async def test_cancel_cancels_the_handler_and_nothing_more_is_written(
    live_server: LiveServer,
) -> None:
    handler = Forever()

    worker = sdk_worker(live_server, {"forever": handler})
    async with running(worker):
        job = await create_job(live_server, "forever")
        await asyncio.wait_for(handler.started.wait(), 10)
        cancelled = await act(live_server, job["id"], "cancel")
        await wait_until(lambda: worker.outcomes[Outcome.LOST] == 1, what="run ended")

    assert handler.cancelled.is_set()
    assert cancelled["state"] == "cancelled"
    after = await get_job(live_server, job["id"])
    assert (after["state"], after["seq"]) == ("cancelled", cancelled["seq"])


async def test_a_job_recovered_by_the_supervisor_cancels_its_handler_and_nothing_more_is_written(
    start_server: StartServer,
) -> None:
    """lease_lost from the supervisor: a worker that is alive but whose heartbeat aged past
    the timeout loses its job; its next heartbeat learns so, and the handler is cancelled."""
    clocked = await start_clocked(start_server)
    server = clocked.server
    watcher = await connect_user(server, USER)

    async def checkpoint_first(ctx: JobContext) -> None:
        await ctx.checkpoint({"phase": 1})

    handler = Forever(first=checkpoint_first)

    worker = sdk_worker(server, {"stuck": handler}, heartbeat_interval_s=1.0)
    async with running(worker):
        job = await create_job(server, "stuck")
        await asyncio.wait_for(handler.started.wait(), 10)
        await clocked.recovered_as_stale(job["id"], "paused")
        await wait_until(lambda: worker.outcomes[Outcome.LOST] == 1, within_s=20, what="lost")

    assert handler.cancelled.is_set()
    assert worker.outcomes == {Outcome.LOST: 1}
    after = await get_job(server, job["id"])
    assert after["state"] == "paused"
    kinds = [e["type"] for e in watcher.events.of_job(job["id"])]
    assert kinds[-3:] == ["job:checkpoint", "job:paused", "job:recovery"]
    assert watcher.events.of_job(job["id"])[-1]["seq"] == after["seq"]


@pytest.mark.parametrize(
    ("coalescing", "sent"),
    [
        # no waiting, but only moves of 10 or more go out (and the last value, before complete)
        ({"progress_min_delta": 10.0, "progress_min_interval_s": 0.0}, [*range(1, 100, 10), 100]),
        # any move, but at most one report a minute: the first, and the last before complete
        ({"progress_min_delta": 0.0, "progress_min_interval_s": 60.0}, [1, 100]),
    ],
)
async def test_progress_is_coalesced_and_the_last_report_goes_out_before_complete(
    live_server: LiveServer, coalescing: dict[str, float], sent: list[int]
) -> None:
    watcher = await connect_user(live_server, USER)

    async def chatty(ctx: JobContext) -> str:
        for value in range(1, 101):
            await ctx.progress(value, "counting")
        return "counted"

    worker = sdk_worker(live_server, {"chatty": chatty}, **coalescing)
    # What the server accepted from this worker (its own events may be rate-limited further).
    accepted: list[float] = []
    call = worker.connection.call

    async def recording_call(event: str, payload: Mapping[str, Any], **options: Any) -> Any:
        ack = await call(event, payload, **options)
        if event == "progress":
            accepted.append(payload["progress"])
        return ack

    worker.connection.call = recording_call  # type: ignore[method-assign]
    async with running(worker):
        job = await create_job(live_server, "chatty")
        done = await until_job(live_server, job["id"], in_state("completed"), what="completed")
        await watcher.events.wait_for_job_event(job["id"], "job:completed")

    assert accepted == [float(v) for v in sent]
    events = watcher.events.of_job(job["id"])
    assert [e["type"] for e in events[-2:]] == ["job:progress", "job:completed"]
    assert events[-2]["data"] == {"progress": 100.0, "step": "counting"}
    assert (done["progress"], done["step"], done["result"]) == (100.0, "counting", "counted")
