"""The worker SDK: pure parts (backoff, coalescing, acks, configuration), one job's run over
a scripted connection, and the whole worker against the real in-process server."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import random
import signal
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import aiohttp
import attrs
import pytest
import socketio
from aiohttp import web

from jobspine_shared.models import JobRecord
from jobspine_shared.states import JobState
from server.app import close_client_connections, create_app
from server.auth import mint_token
from server.config import load_settings as load_server_settings
from server.keys import SUPERVISOR
from server.store.base import JobStore
from server.store.memory import MemoryJobStore
from server.supervisor import Supervisor
from tests.support.processes import free_port
from tests.support.server import (
    TEST_SECRET,
    LiveServer,
    StartServer,
    connect_user,
    connect_worker,
)
from workers.cli import EnvError, load_settings, main
from workers.examples import EXAMPLE_HANDLERS
from workers.examples import steps as examples_steps
from workers.sdk.backoff import Backoff
from workers.sdk.coalesce import ProgressCoalescer, ProgressUpdate
from workers.sdk.config import WorkerConfig
from workers.sdk.context import JobContext
from workers.sdk.errors import (
    AckTimeout,
    AuthRefused,
    CheckpointTooLarge,
    ConnectionLost,
    PauseCause,
    PauseRequested,
    RpcError,
)
from workers.sdk.job_run import Claim, JobRun, Outcome, failure_message
from workers.sdk.rpc import WorkerConnection, connect_refusal, parse_ack
from workers.sdk.worker import Worker, WorkerStopped
from workers.testing import FakeJobContext, wait_until

#: The real-server fixtures (``live_server``, ``start_server``); harmless when the root
#: conftest registers them too.

# -- backoff --------------------------------------------------------------------------------


def test_backoff_doubles_up_to_the_cap_and_resets() -> None:
    backoff = Backoff(0.5, 4.0, jitter=0)

    assert [backoff.next_delay() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    backoff.reset()
    assert backoff.next_delay() == 0.5


def test_backoff_jitter_stays_within_bounds() -> None:
    backoff = Backoff(1.0, 1.0, jitter=0.25, rng=random.Random(7))

    delays = [backoff.next_delay() for _ in range(200)]

    assert all(0.75 <= d <= 1.25 for d in delays)
    assert len(set(delays)) > 100


# -- progress coalescing --------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def coalescer(
    clock: Clock, *, min_delta: float = 1.0, min_interval_s: float = 1.0
) -> ProgressCoalescer:
    return ProgressCoalescer(min_delta=min_delta, min_interval_s=min_interval_s, clock=clock)


def test_first_report_goes_out_at_once() -> None:
    c = coalescer(Clock())

    assert c.offer(5.0, "a") == ProgressUpdate(5.0, "a")


def test_reports_within_the_interval_wait_and_the_latest_wins() -> None:
    clock = Clock()
    c = coalescer(clock)
    c.sent(c.offer(5.0, "a") or ProgressUpdate(0, None))

    clock.now += 0.5
    assert c.offer(20.0, "a") is None
    assert c.offer(30.0, "b") is None
    assert c.take_due() is None
    clock.now += 0.5
    assert c.take_due() == ProgressUpdate(30.0, "b")


def test_small_moves_wait_but_a_new_step_text_goes_out() -> None:
    clock = Clock()
    c = coalescer(clock)
    c.sent(ProgressUpdate(5.0, "a"))
    clock.now += 10

    assert c.offer(5.5, "a") is None
    assert c.offer(5.6, "b") == ProgressUpdate(5.6, "b")


def test_the_last_report_is_always_available_for_the_final_flush() -> None:
    clock = Clock()
    c = coalescer(clock)
    c.sent(ProgressUpdate(5.0, "a"))

    c.offer(5.1, "a")

    assert c.take_pending() == ProgressUpdate(5.1, "a")
    c.sent(ProgressUpdate(5.1, "a"))
    assert c.take_pending() is None


def test_a_repeat_of_what_was_sent_is_dropped() -> None:
    clock = Clock()
    c = coalescer(clock)
    c.sent(ProgressUpdate(5.0, "a"))
    clock.now += 10

    assert c.offer(5.0, "a") is None
    assert c.take_pending() is None


def test_a_checkpoint_with_higher_progress_supersedes_a_pending_report() -> None:
    c = coalescer(Clock())
    c.sent(ProgressUpdate(5.0, "a"))
    c.offer(6.0, "a")

    c.superseded(10.0)

    assert c.take_pending() is None


# -- acks and refusals ----------------------------------------------------------------------


def test_parse_ack() -> None:
    assert parse_ack("claim", {"ok": True, "job": None}) == {"ok": True, "job": None}
    with pytest.raises(RpcError) as refused:
        parse_ack(
            "progress",
            {
                "ok": False,
                "error": {
                    "code": "lease_lost",
                    "message": "gone",
                    "details": {"state": "cancelled"},
                },
            },
        )
    assert (refused.value.code, refused.value.message) == ("lease_lost", "gone")
    assert refused.value.details == {"state": "cancelled"}
    with pytest.raises(RpcError, match="protocol_error"):
        parse_ack("claim", "nonsense")


def test_connect_refusal_reads_the_contract_error_object() -> None:
    wrapped = {"message": "expired", "data": {"code": "unauthorized", "message": "expired"}}
    assert connect_refusal(wrapped) == ("unauthorized", "expired")
    assert connect_refusal({"code": "forbidden", "message": "users only"}) == (
        "forbidden",
        "users only",
    )
    assert connect_refusal("Connection refused by the server") is None


def test_config_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="heartbeat_interval_s"):
        WorkerConfig(url="http://x", token="t", heartbeat_interval_s=0)
    with pytest.raises(ValueError, match="concurrency"):
        WorkerConfig(url="http://x", token="t", concurrency=0)


# -- python -m workers: configuration -------------------------------------------------------


def test_settings_defaults() -> None:
    settings = load_settings({"JOBSPINE_TOKEN": "jwt"})

    assert settings.config.url == "http://127.0.0.1:8080"
    assert settings.config.concurrency == 4
    assert settings.config.heartbeat_interval_s == 5.0
    assert settings.types == ("research", "trade", "analysis")


def test_blank_variables_mean_their_defaults() -> None:
    blank = ("JOBSPINE_URL", "WORKER_TYPES", "WORKER_CONCURRENCY", "WORKER_HEARTBEAT_S")
    settings = load_settings({"JOBSPINE_TOKEN": "jwt", **dict.fromkeys(blank, " ")})

    assert settings.config.url == "http://127.0.0.1:8080"
    assert settings.config.concurrency == 4
    assert settings.config.heartbeat_interval_s == 5.0
    assert settings.types == ("research", "trade", "analysis")


def test_settings_read_every_variable() -> None:
    settings = load_settings(
        {
            "JOBSPINE_URL": "https://jobs.example:8443",
            "JOBSPINE_TOKEN": "jwt",
            "WORKER_TYPES": " trade, research ,trade",
            "WORKER_CONCURRENCY": "8",
            "WORKER_HEARTBEAT_S": "0.5",
        }
    )

    assert settings.config.url == "https://jobs.example:8443"
    assert settings.types == ("trade", "research")
    assert settings.config.concurrency == 8
    assert settings.config.heartbeat_interval_s == 0.5


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({}, "JOBSPINE_TOKEN"),
        ({"JOBSPINE_URL": "ftp://x"}, "JOBSPINE_URL"),
        ({"WORKER_TYPES": "research,mining"}, "WORKER_TYPES"),
        ({"WORKER_TYPES": " , "}, "WORKER_TYPES"),
        ({"WORKER_CONCURRENCY": "many"}, "WORKER_CONCURRENCY"),
        ({"WORKER_CONCURRENCY": "0"}, "WORKER_CONCURRENCY"),
        ({"WORKER_HEARTBEAT_S": "-1"}, "WORKER_HEARTBEAT_S"),
        ({"WORKER_HEARTBEAT_S": "nan"}, "WORKER_HEARTBEAT_S"),
    ],
)
def test_a_bad_variable_is_named_in_one_line_and_exits_2(
    env: dict[str, str], variable: str, capsys: pytest.CaptureFixture[str]
) -> None:
    full = {"JOBSPINE_TOKEN": "jwt", **env} if variable != "JOBSPINE_TOKEN" else env
    with pytest.raises(EnvError, match=f"^{variable}: "):
        load_settings(full)

    assert main(full) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert variable in err


# -- the connection, over a scripted Socket.IO client ---------------------------------------


class FakeSocket:
    """Plays ``socketio.AsyncClient`` for :class:`WorkerConnection`: ``server`` decides."""

    def __init__(self, server: FakeSocketServer) -> None:
        self.server = server
        self.handlers: dict[str, Callable[..., Any]] = {}
        self.connected = False

    def on(self, event: str, handler: Callable[..., Any], namespace: str | None = None) -> None:
        self.handlers[event] = handler

    async def connect(self, url: str, **kwargs: Any) -> None:
        self.server.attempts += 1
        if self.server.refusal is not None:
            self.handlers["connect_error"]({"message": "no", "data": self.server.refusal})
            raise socketio.exceptions.ConnectionError("One or more namespaces failed to connect")
        if self.server.down:
            self.handlers["connect_error"]("Connection error")
            raise socketio.exceptions.ConnectionError("Connection error")
        self.connected = True
        self.server.sockets.append(self)

    async def emit(
        self,
        event: str,
        data: Any = None,
        namespace: str | None = None,
        callback: Callable[..., None] | None = None,
    ) -> None:
        self.server.emitted.append(event)
        if event in self.server.silent:
            return
        assert callback is not None
        callback({"ok": True, "echo": data})

    async def disconnect(self) -> None:
        self.connected = False

    def drop(self) -> None:
        """The transport went away (the server stopped)."""
        self.connected = False
        self.handlers["disconnect"]("transport close")


@attrs.define
class FakeSocketServer:
    down: bool = False
    refusal: dict[str, str] | None = None
    silent: set[str] = attrs.field(factory=set)
    attempts: int = 0
    sockets: list[FakeSocket] = attrs.field(factory=list)
    emitted: list[str] = attrs.field(factory=list)

    def connection(self, **options: Any) -> WorkerConnection:
        return WorkerConnection(
            url="http://fake",
            token="t",
            backoff=Backoff(0.01, 0.02),
            client_factory=lambda: FakeSocket(self),
            **options,
        )


@contextlib.asynccontextmanager
async def connection_running(conn: WorkerConnection) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(conn.run())
    try:
        yield task
    finally:
        await conn.close()
        await asyncio.wait_for(task, 5)


async def test_calls_return_acks_once_connected() -> None:
    server = FakeSocketServer()
    conn = server.connection()
    with pytest.raises(ConnectionLost):
        await conn.call("claim", {})
    async with connection_running(conn):
        await conn.wait_connected()
        assert await conn.call("claim", {"types": ["a"]}) == {"ok": True, "echo": {"types": ["a"]}}


async def test_connecting_retries_with_backoff_until_the_server_is_up() -> None:
    server = FakeSocketServer(down=True)
    conn = server.connection()
    async with connection_running(conn):
        await wait_until(lambda: server.attempts >= 3, what="three attempts")
        server.down = False
        await conn.wait_connected()

    assert conn.sessions == 1


async def test_a_refused_token_is_fatal() -> None:
    server = FakeSocketServer(refusal={"code": "unauthorized", "message": "token expired"})
    conn = server.connection()

    with pytest.raises(AuthRefused, match="unauthorized: token expired"):
        await asyncio.wait_for(conn.run(), 5)
    assert server.attempts == 1


async def test_a_dropped_connection_fails_waiting_calls_fast_and_reconnects() -> None:
    server = FakeSocketServer(silent={"checkpoint"})
    conn = server.connection(ack_timeout_s=60)
    async with connection_running(conn):
        await conn.wait_connected()
        call = asyncio.create_task(conn.call("checkpoint", {}))
        await wait_until(lambda: "checkpoint" in server.emitted, what="sent")
        server.sockets[0].drop()
        with pytest.raises(ConnectionLost):
            await asyncio.wait_for(call, 5)
        await wait_until(lambda: conn.sessions == 2, what="reconnected")


async def test_an_ack_timeout_drops_the_connection_and_reconnects() -> None:
    server = FakeSocketServer(silent={"heartbeat"})
    conn = server.connection(ack_timeout_s=0.05)
    async with connection_running(conn):
        await conn.wait_connected()
        with pytest.raises(AckTimeout):
            await conn.call("heartbeat", {})
        await wait_until(lambda: conn.sessions == 2, what="reconnected")

    assert not server.sockets[0].connected


# -- one job's run over a scripted connection -----------------------------------------------


class ScriptedConnection:
    """Answers the worker RPCs like a server holding one running job.

    ``revoke(state)`` makes every later lease-carrying call ``lease_lost``; ``failures``
    queues exceptions per event; ``hold(event)`` makes that event wait until released.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.pause_requested = False
        self.state = "running"
        self.failures: dict[str, list[BaseException]] = {}
        self.connected = True

    async def wait_connected(self) -> None:
        return None

    def revoke(self, state: str) -> None:
        self.state = state

    def events(self) -> list[str]:
        return [event for event, _ in self.calls]

    async def call(
        self, event: str, payload: Mapping[str, Any], *, ack_timeout_s: float | None = None
    ) -> dict[str, Any]:
        self.calls.append((event, dict(payload)))
        queued = self.failures.get(event)
        if queued:
            raise queued.pop(0)
        if self.state != "running":
            raise RpcError("lease_lost", "no longer running", {"state": self.state})
        if event == "heartbeat":
            return {"ok": True, "pause_requested": self.pause_requested}
        if event == "checkpoint":
            return {"ok": True, "checkpoint_at": "2026-11-22T10:00:00Z"}
        if event == "complete":
            self.state = "completed"
        elif event == "fail":
            self.state = "failed"
        elif event == "paused":
            if not self.pause_requested:
                raise RpcError("invalid_transition", "no pause was requested")
            self.state = "paused"
        return {"ok": True}


def make_claim(*, checkpoint: dict[str, Any] | None = None, progress: float = 0.0) -> Claim:
    now = datetime.now(UTC)
    job = JobRecord(
        id="00000000-0000-4000-8000-000000000042",
        user_id="alice",
        type="research",
        input={"query": "q"},
        state=JobState.RUNNING,
        attempt=1,
        progress=progress,
        created_at=now,
        updated_at=now,
        epoch="e1",
    )
    return Claim(job=job, lease="lease-1", checkpoint=checkpoint)


def fast_config(**overrides: Any) -> WorkerConfig:
    values: dict[str, Any] = {
        "url": "http://unused",
        "token": "t",
        "heartbeat_interval_s": 0.02,
        "progress_min_interval_s": 60.0,
        "progress_min_delta": 1.0,
        "pause_timeout_s": None,
    }
    values.update(overrides)
    return WorkerConfig(**values)


Handler = Callable[[JobContext], Any]


async def run_job(
    handler: Handler,
    connection: ScriptedConnection,
    *,
    claim: Claim | None = None,
    **config: Any,
) -> tuple[JobRun, Outcome]:
    run = JobRun(claim or make_claim(), handler, connection, fast_config(**config))
    outcome = await asyncio.wait_for(run.run(), 10)
    return run, outcome


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
    saw: list[str] = []

    async def handler(ctx: JobContext) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            saw.append("cancelled")
            raise

    async def cancel_soon() -> None:
        await wait_until(lambda: "heartbeat" in conn.events(), what="a heartbeat")
        conn.revoke("cancelled")

    canceller = asyncio.create_task(cancel_soon())
    _, outcome = await run_job(handler, conn)
    await canceller

    assert outcome is Outcome.LOST
    assert saw == ["cancelled"]
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
    saw: list[str] = []

    async def handler(ctx: JobContext) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            saw.append("cancelled")
            raise

    _, outcome = await run_job(handler, conn, pause_timeout_s=0.05)

    assert outcome is Outcome.PAUSED
    assert saw == ["cancelled"]


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
    started = asyncio.Event()
    saw: list[str] = []

    async def handler(ctx: JobContext) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            saw.append("cancelled")
            raise

    run = JobRun(make_claim(), handler, conn, fast_config())
    task = asyncio.create_task(run.run())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert saw == ["cancelled"]
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

FAST_SERVER = {"HEARTBEAT_TIMEOUT_S": "0.5", "SUPERVISOR_INTERVAL_S": "0.1"}
USER = "alice"


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


@contextlib.asynccontextmanager
async def supervising(server: LiveServer) -> AsyncIterator[Supervisor]:
    """The app's own supervisor (it runs from start-up), woken for an immediate tick."""
    supervisor = server.app[SUPERVISOR]
    assert supervisor.status.running
    supervisor.wake()
    yield supervisor


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


async def test_heartbeats_keep_a_slow_handler_alive_past_the_timeout(
    start_server: StartServer,
) -> None:
    server = await start_server(env=FAST_SERVER)
    release = asyncio.Event()

    async def slow(ctx: JobContext) -> str:
        await release.wait()  # "computes" without reporting anything
        return "done"

    async with supervising(server), running(sdk_worker(server, {"slow": slow})):
        job = await create_job(server, "slow")
        started = await until_job(server, job["id"], in_state("running"), what="running")
        timeout_s = float(FAST_SERVER["HEARTBEAT_TIMEOUT_S"])

        def alive_long(snapshot: dict[str, Any]) -> bool:
            assert snapshot["state"] == "running", snapshot
            beat, began = parse(snapshot["last_heartbeat_at"]), parse(started["started_at"])
            return (beat - began).total_seconds() > 4 * timeout_s

        await until_job(server, job["id"], alive_long, what="heartbeats past 4 timeouts")
        release.set()
        done = await until_job(server, job["id"], in_state("completed"), what="completed")

    assert done["result"] == "done"
    assert done["recovery_attempts"] == 0


async def test_a_job_without_heartbeats_is_recovered_by_the_supervisor(
    start_server: StartServer,
) -> None:
    """The control for the test above: the same server fails a silent job."""
    server = await start_server(env=FAST_SERVER)
    job = await create_job(server, "slow")
    raw = await connect_worker(server)
    await raw.ok("claim", {"types": ["slow"]})

    async with supervising(server):
        failed = await until_job(server, job["id"], in_state("failed"), what="failed as stale")

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
    running_now, saw = asyncio.Event(), []

    async def handler(ctx: JobContext) -> None:
        running_now.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            saw.append("CancelledError")
            raise

    worker = sdk_worker(live_server, {"forever": handler})
    async with running(worker):
        job = await create_job(live_server, "forever")
        await asyncio.wait_for(running_now.wait(), 10)
        cancelled = await act(live_server, job["id"], "cancel")
        await wait_until(lambda: worker.outcomes[Outcome.LOST] == 1, what="run ended")

    assert saw == ["CancelledError"]
    assert cancelled["state"] == "cancelled"
    after = await get_job(live_server, job["id"])
    assert (after["state"], after["seq"]) == ("cancelled", cancelled["seq"])


async def test_a_job_recovered_by_the_supervisor_cancels_its_handler_and_nothing_more_is_written(
    start_server: StartServer,
) -> None:
    """lease_lost from the supervisor: a worker that is alive but heartbeats far too rarely
    loses its job; its next heartbeat learns so, and the handler is cancelled."""
    server = await start_server(env=FAST_SERVER)
    watcher = await connect_user(server, USER)
    checkpointed, saw = asyncio.Event(), []

    async def handler(ctx: JobContext) -> None:
        await ctx.checkpoint({"phase": 1})
        checkpointed.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            saw.append("CancelledError")
            raise

    # six timeouts between heartbeats: the job looks stale although the worker is alive
    worker = sdk_worker(server, {"stuck": handler}, heartbeat_interval_s=3.0)
    async with supervising(server), running(worker):
        job = await create_job(server, "stuck")
        await asyncio.wait_for(checkpointed.wait(), 10)
        await until_job(server, job["id"], in_state("paused"), what="paused as stale")
        await wait_until(lambda: worker.outcomes[Outcome.LOST] == 1, within_s=20, what="lost")

    assert saw == ["CancelledError"]
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


@pytest.mark.parametrize("how", ["graceful stop past the grace period", "crash"])
async def test_crash_and_resume_loop(start_server: StartServer, how: str) -> None:
    """A worker goes away mid-job; the supervisor pauses the stale job (it has a checkpoint);
    the user resumes it; another worker continues from the checkpoint to the same result."""
    server = await start_server(env=FAST_SERVER)
    job_input = {"dataset": "sensor-readings", "steps": 40, "step_seconds": 0.02}
    first = sdk_worker(server, EXAMPLE_HANDLERS, grace_period_s=0, shutdown_checkpoint_s=5)
    first_run = asyncio.create_task(first.run())
    job = await create_job(server, "analysis", job_input)
    await until_job(server, job["id"], lambda j: j["progress"] >= 25, what="progress")
    if how == "crash":
        first_run.cancel()  # no more writes, no goodbye: like a killed process
        with contextlib.suppress(asyncio.CancelledError):
            await first_run
    else:
        first.stop()
        await asyncio.wait_for(first_run, 10)
        assert first.outcomes == {Outcome.SHUTDOWN: 1}

    async with supervising(server):
        stalled = await until_job(server, job["id"], in_state("paused"), what="paused as stale")
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
    lines = [line for line in log.splitlines() if job["id"] in line]
    assert len(lines) == 2, log
    assert lines[0].endswith("claimed, attempt 1")
    assert lines[1].endswith("completed")
    assert "worker" in log.splitlines()[-1]
    assert log.splitlines()[-1].endswith("stopped")
