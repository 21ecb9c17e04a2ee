"""The end-to-end loop with real processes: ``python -m server`` and ``python -m workers``.

A user's Socket.IO client follows a ``research`` job; the worker process is killed with
SIGKILL after a checkpoint; the web process's own supervisor pauses the stale job
(``job:paused`` with ``reason: stalled``, then ``job:recovery``); the user resumes it over
REST; a second worker process continues from the checkpoint and completes it with the result
of an uninterrupted run. The client sees every event once, ``seq`` contiguous from 1. It runs
on the in-memory store and on PostgreSQL.

Every wait is a condition with a generous deadline; the children's output is printed when
they stop, so a failure shows it (see :mod:`tests.support.processes`).
"""

from __future__ import annotations

import re
import signal
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import attrs
import pytest
import socketio

from tests.support.log_lines import log_messages
from tests.support.processes import Proc, token, web_process, worker_process
from tests.support.progress_steps import step_numbers
from tests.support.server import EventRecorder
from workers.examples import EXAMPLE_HANDLERS
from workers.examples import steps as example_steps
from workers.testing import FakeJobContext, wait_until

pytestmark = pytest.mark.slow

#: Generous: two cores, shared with other test runs. A healthy wait takes a second or two.
WAIT_S = 60.0
#: The web process's supervisor: stale after 3 s without a heartbeat, looked for every 0.2 s.
SERVER_ENV = {"HEARTBEAT_TIMEOUT_S": "3", "SUPERVISOR_INTERVAL_S": "0.2"}
#: The worker heartbeats 15 times per timeout, so only a dead worker looks stale (not one
#: that a busy machine held up for a second or two).
WORKER_ENV = {"WORKER_HEARTBEAT_S": "0.2", "WORKER_TYPES": "research"}
USER = "alice"
STEPS = 8
#: Long enough to kill the worker mid-job after its first checkpoint, short enough to be quick.
JOB_INPUT = {"query": "solid-state batteries", "steps": STEPS, "step_seconds": 0.4}
STEP_TEXT = re.compile(r"step (\d+)/(\d+): .*")


@attrs.define
class UserClient:
    """A user's Socket.IO connection to ``/``: acks, and every event it received, in order.

    It does not reconnect: the loop must not need a replay, so a dropped connection fails
    the test instead of being papered over.
    """

    sio: socketio.AsyncClient
    events: EventRecorder
    disconnects: list[str] = attrs.field(factory=list)

    async def ok(self, event: str, payload: dict[str, Any]) -> dict[str, Any]:
        ack = await self.sio.call(event, payload, timeout=WAIT_S)
        assert isinstance(ack, dict), ack
        assert ack.get("ok") is True, f"{event}: {ack!r}"
        return ack

    def job_events(self, job_id: str) -> list[dict[str, Any]]:
        return self.events.of_job(job_id)


@pytest.fixture
async def connect() -> AsyncIterator[Any]:
    """``await connect(url)``: a :class:`UserClient` as :data:`USER`, closed afterwards."""
    clients: list[UserClient] = []

    async def open_client(url: str) -> UserClient:
        client = UserClient(sio=socketio.AsyncClient(reconnection=False), events=EventRecorder())

        async def any_event(event: str, *args: Any) -> None:
            await client.events.record(event, args[0] if len(args) == 1 else list(args))

        async def disconnected(reason: Any = None) -> None:
            client.disconnects.append(str(reason))

        client.sio.on("*", any_event)
        client.sio.on("disconnect", disconnected)
        await client.sio.connect(url, auth={"token": token(USER)}, wait_timeout=WAIT_S)
        clients.append(client)
        return client

    try:
        yield open_client
    finally:
        for client in clients:
            await client.sio.disconnect()


@pytest.fixture(params=["memory", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_env(request: pytest.FixtureRequest) -> dict[str, str]:
    """The web process's store: in memory, or a fresh database cloned from the template."""
    if request.param == "memory":
        return {}
    dsn: str = request.getfixturevalue("postgres_dsn")
    return {"DATABASE_URL": dsn}


async def uninterrupted_result(
    monkeypatch: pytest.MonkeyPatch, job_type: str, job_input: dict[str, Any]
) -> Any:
    """What the example handler returns when nothing interrupts it (in process, no waits)."""

    async def no_wait(seconds: float) -> None:
        return None

    with monkeypatch.context() as patched:
        patched.setattr(example_steps, "simulate_work", no_wait)
        return await EXAMPLE_HANDLERS[job_type](FakeJobContext(job_type, job_input))


def of_type(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == kind]


async def rest(
    http: aiohttp.ClientSession, method: str, url: str, *, json: Any = None
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token(USER)}"}
    async with http.request(method, url, json=json, headers=headers) as response:
        return response.status, await response.json()


async def test_a_killed_worker_s_job_is_paused_resumed_and_completed_from_its_checkpoint(
    store_env: dict[str, str], connect: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with web_process(**SERVER_ENV, **store_env) as web, aiohttp.ClientSession() as http:
        user: UserClient = await connect(web.url)
        api = f"{web.url}/api/jobs"

        # 1. a worker process runs the job; it is killed after at least one checkpoint
        async with worker_process(web.url, "worker-a", **WORKER_ENV) as first:
            created = await user.ok("job:create", {"type": "research", "input": JOB_INPUT})
            job_id = created["job"]["id"]
            await user.ok("job:subscribe", {"job_id": job_id})
            await user.events.wait_for_job_event(job_id, "job:checkpoint", within=WAIT_S)
            first.kill(signal.SIGKILL)
            assert await first.wait() == -signal.SIGKILL

        # 2. the supervisor pauses the stale job, and the client learns its recovery options
        paused = await user.events.wait_for_job_event(job_id, "job:paused", within=WAIT_S)
        recovery = await user.events.wait_for_job_event(job_id, "job:recovery", within=WAIT_S)
        status, saved = await rest(http, "GET", f"{api}/{job_id}/checkpoint")
        assert status == 200, saved
        done_before_kill = saved["data"]["completed_steps"]
        assert 1 <= done_before_kill < STEPS

        # 3. the user resumes it over REST; a second worker process finishes it
        status, resumed = await rest(http, "POST", f"{api}/{job_id}/resume")
        assert status == 200, resumed
        assert resumed["state"] == "created"
        async with worker_process(web.url, "worker-b", **WORKER_ENV) as second:
            completed = await user.events.wait_for_job_event(job_id, "job:completed", within=WAIT_S)
            await wait_until(
                lambda: "completed" in second.output(), within_s=WAIT_S, what="worker-b logged"
            )
            second_log = second.output()
        status, final = await rest(http, "GET", f"{api}/{job_id}")
        assert status == 200, final
        assert user.disconnects == [], "the client lost its connection: no replay expected"

    events = user.job_events(job_id)
    # every event once, seq contiguous from 1, and nothing after the completion
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1)), events
    assert events[-1] is completed
    assert final["seq"] == completed["seq"]

    # the supervisor's recovery: paused as stalled, then the options, then the user's resume
    assert paused["data"]["reason"] == "stalled"
    assert recovery["seq"] == paused["seq"] + 1
    assert recovery["data"]["resumable"] is True
    assert recovery["data"]["checkpoint"]["present"] is True
    assert recovery["data"]["recovery_attempts"] == 1
    assert events[recovery["seq"]]["type"] == "job:resumed"

    # the first attempt did steps 1..c (maybe c+1 without its checkpoint) and checkpointed 1..c
    starts = of_type(events, "job:started")
    assert [(s["data"]["attempt"], s["data"]["resumed"]) for s in starts] == [(1, False), (2, True)]
    first_attempt = [e for e in events if e["seq"] < paused["seq"]]
    second_attempt = [e for e in events if e["seq"] > starts[1]["seq"]]
    assert len(of_type(first_attempt, "job:checkpoint")) == done_before_kill
    assert step_numbers(first_attempt, STEP_TEXT, total=STEPS) in (
        list(range(1, done_before_kill + 1)),
        list(range(1, done_before_kill + 2)),
    )
    # the second attempt starts after the checkpoint: the work before it is not redone
    assert step_numbers(second_attempt, STEP_TEXT, total=STEPS) == list(
        range(done_before_kill + 1, STEPS + 1)
    )
    assert len(of_type(second_attempt, "job:checkpoint")) == STEPS - done_before_kill
    assert "resuming from its checkpoint" in second_log, second_log

    # ... and ends where an uninterrupted run ends
    expected = await uninterrupted_result(monkeypatch, "research", JOB_INPUT)
    assert completed["data"]["result"] == expected
    assert expected["completed_steps"] == STEPS
    assert (final["state"], final["attempt"], final["recovery_attempts"]) == ("completed", 2, 1)
    assert final["result"] == expected
    assert final["progress"] == 100.0


async def test_sigterm_lets_the_running_job_finish_and_claims_nothing_more(
    connect: Any,
) -> None:
    """SIGTERM mid-job: the worker process stops claiming, the running handler finishes
    within the grace period (10 s by default), and the process exits 0."""
    job_input = {"query": "graceful", "steps": 4, "step_seconds": 0.3}
    async with web_process(**SERVER_ENV) as web, aiohttp.ClientSession() as http:
        user: UserClient = await connect(web.url)
        async with worker_process(web.url, "worker-a", **WORKER_ENV) as worker:
            created = await user.ok("job:create", {"type": "research", "input": job_input})
            job_id = created["job"]["id"]
            await user.events.wait_for_job_event(job_id, "job:started", within=WAIT_S)
            worker.kill(signal.SIGTERM)
            await wait_until(
                lambda: "stopping: no new claims" in worker.output(),
                within_s=WAIT_S,
                what="the worker began stopping",
            )
            later = await user.ok("job:create", {"type": "research", "input": job_input})
            assert await worker.wait(WAIT_S) == 0, worker.output()
            log = worker.output()

        status, job = await rest(http, "GET", f"{web.url}/api/jobs/{job_id}")
        assert status == 200, job
        status, untouched = await rest(http, "GET", f"{web.url}/api/jobs/{later['job']['id']}")
        assert status == 200, untouched

    assert job["state"] == "completed", log
    assert job["result"]["completed_steps"] == 4
    assert (untouched["state"], untouched["attempt"]) == ("created", 0)
    assert f"job {job_id} (research): completed" in log
    assert log_messages(log)[-1].endswith("stopped"), log


async def test_no_child_outlives_a_failing_block(capsys: pytest.CaptureFixture[str]) -> None:
    """The process helpers stop their children when the test fails inside the block, and
    print what the children wrote, so the failure report shows it."""
    children: list[Proc] = []

    async def failing() -> None:
        async with web_process(**SERVER_ENV) as web, worker_process(web.url, "worker-a") as worker:
            children.extend([web.proc, worker])
            await wait_until(
                lambda: "connected to" in worker.output(), within_s=WAIT_S, what="connected"
            )
            raise RuntimeError("the test failed here")

    with pytest.raises(RuntimeError, match="the test failed here"):
        await failing()

    web, worker = children
    assert (web.returncode, worker.returncode) == (0, 0)
    printed = capsys.readouterr().out
    assert f"----- worker-a (pid {worker.pid}, exit status 0) -----" in printed
    assert "connected to http://127.0.0.1:" in printed
    assert f"----- web (pid {web.pid}, exit status 0) -----" in printed
