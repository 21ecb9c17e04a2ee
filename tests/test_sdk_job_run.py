"""One job's run (:class:`workers.sdk.job_run.JobRun`) over a scripted connection: results,
failures, heartbeats, lease loss, pauses, shutdown and the checks on what a handler
reports."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.support.handlers import Forever
from tests.support.scripted_job import ScriptedConnection, fast_config, make_claim, run_job
from workers.sdk.context import JobContext
from workers.sdk.errors import (
    CheckpointTooLarge,
    ConnectionLost,
    PauseCause,
    PauseRequested,
    RpcError,
)
from workers.sdk.job_run import JobRun, Outcome, failure_message
from workers.testing import wait_until


async def test_a_result_completes_the_job_after_the_last_progress() -> None:
    conn = ScriptedConnection()

    async def handler(ctx: JobContext) -> dict[str, Any]:
        await ctx.progress(10, "step 1/2")
        await ctx.progress(10.2, "step 1/2")  # coalesced: too small, too soon
        return {"answer": 42}

    _, outcome = await run_job(handler, conn)

    assert outcome is Outcome.COMPLETED
    assert [(e, p.get("progress")) for e, p in conn.calls if e != "heartbeat"] == [
        ("progress", 10.0),
        ("progress", 10.2),
        ("complete", None),
    ]
    assert conn.calls[-1][1] == {
        "job_id": make_claim().job.id,
        "lease": "lease-1",
        "result": {"answer": 42},
    }


async def test_heartbeats_run_while_the_handler_computes() -> None:
    conn = ScriptedConnection()

    async def handler(ctx: JobContext) -> str:
        await wait_until(lambda: conn.events().count("heartbeat") >= 3, what="three heartbeats")
        return "done"

    _, outcome = await run_job(handler, conn)

    assert outcome is Outcome.COMPLETED


def test_failure_messages_fit_the_contract() -> None:
    try:
        raise ValueError("bad row 7")
    except ValueError as exc:
        with_trace = failure_message(exc, with_traceback=True)
        plain = failure_message(exc, with_traceback=False)

    assert plain == "bad row 7"
    assert with_trace.startswith("bad row 7\nTraceback (most recent call last):")
    assert with_trace.endswith("ValueError: bad row 7\n")
    assert failure_message(RuntimeError(), with_traceback=False) == "RuntimeError"
    assert len(failure_message(ValueError("x" * 5000), with_traceback=True)) == 4096


async def test_a_handler_exception_is_reported_as_fail() -> None:
    conn = ScriptedConnection()

    async def handler(ctx: JobContext) -> None:
        raise ValueError("the source is unreachable")

    _, outcome = await run_job(handler, conn)

    assert outcome is Outcome.FAILED
    assert conn.calls[-1] == (
        "fail",
        {
            "job_id": make_claim().job.id,
            "lease": "lease-1",
            "error": {
                "message": "the source is unreachable",
                "code": "handler_error",
                "retryable": False,
            },
        },
    )


async def test_tracebacks_are_sent_only_when_configured() -> None:
    conn = ScriptedConnection()

    async def handler(ctx: JobContext) -> None:
        raise RuntimeError("boom")

    await run_job(handler, conn, send_tracebacks=True)

    message = conn.calls[-1][1]["error"]["message"]
    assert message.startswith("boom\nTraceback")
    assert "RuntimeError: boom" in message


async def test_lease_lost_cancels_the_handler_and_nothing_more_is_written() -> None:
    conn = ScriptedConnection()
    handler = Forever()

    async def cancel_soon() -> None:
        await wait_until(lambda: "heartbeat" in conn.events(), what="a heartbeat")
        conn.revoke("cancelled")

    canceller = asyncio.create_task(cancel_soon())
    _, outcome = await run_job(handler, conn)
    await canceller

    assert outcome is Outcome.LOST
    assert handler.cancelled.is_set()
    refused_at = max(i for i, (e, _) in enumerate(conn.calls) if e == "heartbeat")
    assert conn.calls[refused_at + 1 :] == []


async def test_lease_lost_inside_a_handler_call_cancels_the_handler() -> None:
    conn = ScriptedConnection()
    conn.revoke("paused")
    saw: list[str] = []

    async def handler(ctx: JobContext) -> None:
        try:
            await ctx.checkpoint({"completed_steps": 1})
        except asyncio.CancelledError:
            saw.append("cancelled")
            raise

    _, outcome = await run_job(handler, conn)

    assert outcome is Outcome.LOST
    assert saw == ["cancelled"]
    assert conn.events() == ["checkpoint"]


async def test_pause_request_checkpoint_then_paused() -> None:
    conn = ScriptedConnection()
    steps_done: list[int] = []

    async def handler(ctx: JobContext) -> None:
        for k in (1, 2, 3):
            if k == 2:
                conn.pause_requested = True  # a user asks, the next heartbeat tells
                await ctx.wait_for_pause_request()
            await ctx.progress(k * 10, f"step {k}/3")
            await ctx.checkpoint({"completed_steps": k})
            steps_done.append(k)

    _, outcome = await run_job(handler, conn)

    assert outcome is Outcome.PAUSED
    assert steps_done == [1]
    writes = [(e, p) for e, p in conn.calls if e != "heartbeat"]
    assert [e for e, _ in writes] == ["progress", "checkpoint", "progress", "checkpoint", "paused"]
    assert writes[3][1]["data"] == {"completed_steps": 2}
    # That checkpoint was saved before the pause was honoured, so paused needs no copy.
    assert "checkpoint" not in writes[4][1]


async def test_wait_for_pause_request_and_pause_point() -> None:
    conn = ScriptedConnection()
    conn.pause_requested = True

    async def handler(ctx: JobContext) -> None:
        await ctx.wait_for_pause_request()
        assert ctx.pause_requested
        await ctx.pause_point()

    _, outcome = await run_job(handler, conn)

    assert outcome is Outcome.PAUSED


async def test_a_handler_that_ignores_a_pause_is_cancelled_after_the_pause_timeout() -> None:
    conn = ScriptedConnection()
    conn.pause_requested = True
    handler = Forever()

    _, outcome = await run_job(handler, conn, pause_timeout_s=0.05)

    assert outcome is Outcome.PAUSED
    assert handler.cancelled.is_set()


async def test_a_checkpoint_interrupted_by_the_pause_timeout_goes_out_with_paused() -> None:
    conn = ScriptedConnection()
    conn.pause_requested = True
    conn.failures["checkpoint"] = [ConnectionLost("down")] * 1000

    async def handler(ctx: JobContext) -> None:
        await ctx.checkpoint({"completed_steps": 3})

    _, outcome = await run_job(handler, conn, pause_timeout_s=0.1)

    assert outcome is Outcome.PAUSED
    assert conn.calls[-1][0] == "paused"
    assert conn.calls[-1][1]["checkpoint"] == {"completed_steps": 3}


async def test_shutdown_checkpoint_stops_without_writing() -> None:
    conn = ScriptedConnection()
    started = asyncio.Event()

    async def handler(ctx: JobContext) -> None:
        started.set()
        await ctx.wait_for_pause_request()
        await ctx.checkpoint({"completed_steps": 2})

    run = JobRun(make_claim(), handler, conn, fast_config())
    task = asyncio.create_task(run.run())
    await started.wait()
    run.request_shutdown_checkpoint()
    outcome = await asyncio.wait_for(task, 10)

    assert outcome is Outcome.SHUTDOWN
    assert [e for e in conn.events() if e != "heartbeat"] == ["checkpoint"]


async def test_cancelling_the_run_is_the_hard_stop() -> None:
    conn = ScriptedConnection()
    handler = Forever()

    run = JobRun(make_claim(), handler, conn, fast_config())
    task = asyncio.create_task(run.run())
    await handler.started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert handler.cancelled.is_set()
    assert [e for e in conn.events() if e != "heartbeat"] == []


async def test_complete_is_retried_through_a_lost_connection() -> None:
    conn = ScriptedConnection()
    conn.failures["complete"] = [ConnectionLost("down"), RpcError("unavailable", "store down")]

    async def handler(ctx: JobContext) -> int:
        return 7

    _, outcome = await run_job(handler, conn)

    assert outcome is Outcome.COMPLETED
    assert conn.events().count("complete") == 3


async def test_a_complete_whose_ack_was_lost_is_confirmed_by_lease_lost_completed() -> None:
    conn = ScriptedConnection()
    conn.failures["complete"] = [ConnectionLost("ack lost")]
    conn.revoke("completed")  # the first complete landed before the connection dropped

    async def handler(ctx: JobContext) -> int:
        return 7

    _, outcome = await run_job(handler, conn)

    assert outcome is Outcome.COMPLETED


@pytest.mark.parametrize(
    ("bad_call", "message"),
    [
        (lambda ctx: ctx.progress(101), "progress must be a finite number in [0, 100]"),
        (lambda ctx: ctx.progress(math.nan), "progress must be a finite number"),
        (lambda ctx: ctx.progress(10), "progress may not go down within an attempt (10.0 < 50.0)"),
        (lambda ctx: ctx.checkpoint({"x": math.inf}), "checkpoint data is not JSON-encodable"),
        (lambda ctx: ctx.checkpoint(["x"]), "checkpoint data must be a JSON object"),
    ],
)
async def test_bad_reports_fail_the_job_instead_of_reaching_the_server(
    bad_call: Callable[[JobContext], Any], message: str
) -> None:
    conn = ScriptedConnection()

    async def handler(ctx: JobContext) -> None:
        await bad_call(ctx)

    _, outcome = await run_job(handler, conn, claim=make_claim(progress=50.0))

    assert outcome is Outcome.FAILED
    assert conn.events() == ["fail"]
    assert message in conn.calls[0][1]["error"]["message"]


async def test_a_result_that_is_not_json_fails_the_job() -> None:
    conn = ScriptedConnection()

    async def handler(ctx: JobContext) -> object:
        return {"when": datetime.now(UTC)}

    _, outcome = await run_job(handler, conn)

    assert outcome is Outcome.FAILED
    assert "not JSON" in conn.calls[-1][1]["error"]["message"]


async def test_an_oversized_checkpoint_is_raised_into_the_handler() -> None:
    conn = ScriptedConnection()
    conn.failures["checkpoint"] = [RpcError("payload_too_large", "checkpoint of 2000000 bytes")]
    caught: list[str] = []

    async def handler(ctx: JobContext) -> str:
        try:
            await ctx.checkpoint({"blob": "x"})
        except CheckpointTooLarge as exc:
            caught.append(exc.code)
        return "saved less"

    _, outcome = await run_job(handler, conn)

    assert outcome is Outcome.COMPLETED
    assert caught == ["payload_too_large"]


async def test_a_resumed_attempt_gets_its_checkpoint_and_progress_floor() -> None:
    conn = ScriptedConnection()
    seen: list[Any] = []

    async def handler(ctx: JobContext) -> None:
        seen.append(ctx.checkpoint_data)
        await ctx.progress(60, "step 3/5")

    _, outcome = await run_job(
        handler, conn, claim=make_claim(checkpoint={"completed_steps": 2}, progress=40.0)
    )

    assert outcome is Outcome.COMPLETED
    assert seen == [{"completed_steps": 2}]


async def test_pause_requested_raised_without_a_request_fails_the_job() -> None:
    conn = ScriptedConnection()

    async def handler(ctx: JobContext) -> None:
        raise PauseRequested(PauseCause.USER)

    _, outcome = await run_job(handler, conn)

    assert outcome is Outcome.FAILED


# == against the real server ================================================================
#
# The app runs in-process on a real port (the fixtures of ``tests/support/server.py``); the
# workers are the SDK's, over real Socket.IO. Waits are conditions with deadlines.
