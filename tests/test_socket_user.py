"""The user namespace ``/`` over a real socket: calls and acks, rooms, isolation, replay, sync,
and the refusal of every malformed payload."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from jobspine_shared.wire_schema import CALLS
from server.store.base import JobStore
from tests.support.faults import break_repository, secret_logged
from tests.support.server import (
    TEST_BACKLOG,
    TIMEOUT_S,
    LiveServer,
    SocketClient,
    StartServer,
    connect_user,
    connect_worker,
    running_server,
)


async def _create(client: SocketClient, type: str = "research", **input: Any) -> dict[str, Any]:
    ack = await client.ok("job:create", {"type": type, "input": input})
    assert set(ack) == {"ok", "job"}
    job: dict[str, Any] = ack["job"]
    return job


async def _claimed(worker: SocketClient, job_id: str) -> str:
    ack = await worker.ok("claim", {})
    assert ack["job"]["id"] == job_id, ack
    lease: str = ack["lease"]
    return lease


async def _progress(worker: SocketClient, job_id: str, lease: str, *values: float) -> None:
    for value in values:
        await worker.ok("progress", {"job_id": job_id, "lease": lease, "progress": value})


async def test_create_acks_the_job_and_the_owner_hears_of_it(live_server: LiveServer) -> None:
    user = await connect_user(live_server, "u1")
    job = await _create(user, "research", query="x")
    assert job["user_id"] == "u1"
    assert job["type"] == "research"
    assert job["input"] == {"query": "x"}
    assert job["state"] == "created"
    assert job["seq"] == 1
    assert job["schema_version"] == 2
    created = await user.events.wait_for_job_event(job["id"], "job:created")
    assert created["seq"] == 1
    assert created["epoch"] == job["epoch"]
    assert created["user_id"] == "u1"


async def test_subscribe_acks_the_snapshot_and_joins_the_room(live_server: LiveServer) -> None:
    owner = await connect_user(live_server, "u1")
    admin = await connect_user(live_server, "root", role="admin")
    job = await _create(owner)
    ack = await admin.ok("job:subscribe", {"job_id": job["id"]})
    assert set(ack) == {"ok", "job", "events", "recovered"}
    assert ack["job"]["id"] == job["id"]
    assert ack["events"] == []
    assert ack["recovered"] is False

    worker = await connect_worker(live_server)
    await _claimed(worker, job["id"])
    started = await admin.events.wait_for_job_event(job["id"], "job:started")
    assert started["seq"] == 2
    assert started["data"]["worker_id"] == "worker-1"

    assert (await admin.ok("job:unsubscribe", {"job_id": job["id"]})) == {"ok": True}
    await owner.ok("job:pause", {"job_id": job["id"]})
    await owner.events.wait_for_job_event(job["id"], "job:pause_requested")
    # The admin left the room: a later event of one of its own jobs arrives, this one not.
    own = await _create(admin)
    await admin.events.wait_for_job_event(own["id"], "job:created")
    assert [e["type"] for e in admin.events.of_job(job["id"])] == ["job:started"]


async def test_users_see_and_act_on_their_own_jobs_only(live_server: LiveServer) -> None:
    u1 = await connect_user(live_server, "u1")
    u2 = await connect_user(live_server, "u2")
    job = await _create(u1)
    for event in ["job:subscribe", "job:pause", "job:resume", "job:cancel", "job:restart"]:
        error = await u2.refused(event, {"job_id": job["id"]}, code="not_found")
        assert "details" not in error
    await u2.refused("job:recovery", {"job_id": job["id"]}, code="not_found")
    unknown = str(uuid.uuid4())
    await u1.refused("job:subscribe", {"job_id": unknown}, code="not_found")

    # u2's refused subscription joined no room, and u2 is not in u1's user room.
    worker = await connect_worker(live_server)
    await _claimed(worker, job["id"])
    await u1.events.wait_for_job_event(job["id"], "job:started")
    own = await _create(u2)
    await u2.events.wait_for_job_event(own["id"], "job:created")
    assert u2.events.of_job(job["id"]) == []

    admin = await connect_user(live_server, "root", role="admin")
    assert (await admin.ok("job:subscribe", {"job_id": job["id"]}))["job"]["state"] == "running"
    options = (await admin.ok("job:recovery", {"job_id": job["id"]}))["options"]
    assert options["resumable"] is False
    cancelled = (await admin.ok("job:cancel", {"job_id": job["id"]}))["job"]
    assert cancelled["state"] == "cancelled"


async def test_a_socket_in_both_rooms_gets_each_event_once(live_server: LiveServer) -> None:
    user = await connect_user(live_server, "u1")
    job = await _create(user)
    await user.ok("job:subscribe", {"job_id": job["id"]})
    worker = await connect_worker(live_server)
    lease = await _claimed(worker, job["id"])
    await _progress(worker, job["id"], lease, 10, 20)
    await worker.ok("complete", {"job_id": job["id"], "lease": lease, "result": {"n": 1}})
    await user.events.wait_for_job_event(job["id"], "job:completed")
    events = user.events.of_job(job["id"])
    assert [e["seq"] for e in events] == [1, 2, 3, 4, 5]
    assert [e["type"] for e in events] == [
        "job:created",
        "job:started",
        "job:progress",
        "job:progress",
        "job:completed",
    ]


async def test_steering_a_job_over_the_socket(live_server: LiveServer) -> None:
    user = await connect_user(live_server, "u1")
    job = await _create(user)
    held = (await user.ok("job:pause", {"job_id": job["id"]}))["job"]
    assert held["state"] == "paused"
    options = (await user.ok("job:recovery", {"job_id": job["id"]}))["options"]
    assert options["resumable"] is True
    assert options["checkpoint"]["present"] is False
    assert (await user.ok("job:resume", {"job_id": job["id"]}))["job"]["state"] == "created"
    assert (await user.ok("job:cancel", {"job_id": job["id"]}))["job"]["state"] == "cancelled"
    restarted = await user.ok("job:restart", {"job_id": job["id"], "input": {"v": 2}})
    assert restarted["job"]["state"] == "created"
    assert restarted["job"]["input"] == {"v": 2}
    kept = await user.ok("job:cancel", {"job_id": job["id"]})
    assert kept["job"]["state"] == "cancelled"
    again = await user.ok("job:restart", {"job_id": job["id"]})
    assert again["job"]["input"] == {"v": 2}

    error = await user.refused("job:resume", {"job_id": job["id"]}, code="invalid_transition")
    assert error["details"]["state"] == "created"


@pytest.fixture
async def unthrottled_server(live_store: JobStore, start_server: StartServer) -> LiveServer:
    """A live server where every progress report appends an event (``PROGRESS_EVENTS_PER_S``
    0), for tests that use reports to make a number of events quickly."""
    return await start_server(env={"PROGRESS_EVENTS_PER_S": "0"}, store=live_store)


async def _missed_events(live_server: LiveServer, missed: int) -> tuple[dict[str, Any], int]:
    """A job whose subscriber left at seq ``n`` while ``missed`` more events happened."""
    user = await connect_user(live_server, "u1")
    job = await _create(user)
    worker = await connect_worker(live_server)
    lease = await _claimed(worker, job["id"])
    seen = job["seq"] + 1  # created, started
    await user.events.wait_for(lambda _: len(user.events.of_job(job["id"])) == seen)
    await user.disconnect()
    await _progress(worker, job["id"], lease, *[float(i) for i in range(1, missed + 1)])
    return job, seen


async def test_replay_after_a_disconnect_recovers_exactly_the_missed_events(
    unthrottled_server: LiveServer,
) -> None:
    job, seen = await _missed_events(unthrottled_server, 3)
    back = await connect_user(unthrottled_server, "u1")
    ack = await back.ok(
        "job:subscribe", {"job_id": job["id"], "after_seq": seen, "epoch": job["epoch"]}
    )
    assert ack["recovered"] is True
    assert [e["seq"] for e in ack["events"]] == [seen + 1, seen + 2, seen + 3]
    assert [e["data"]["progress"] for e in ack["events"]] == [1.0, 2.0, 3.0]
    assert ack["job"]["seq"] == seen + 3
    without_epoch = await back.ok("job:subscribe", {"job_id": job["id"], "after_seq": seen})
    assert without_epoch["recovered"] is True
    assert len(without_epoch["events"]) == 3
    nothing_missed = await back.ok("job:subscribe", {"job_id": job["id"], "after_seq": seen + 3})
    assert nothing_missed["recovered"] is True
    assert nothing_missed["events"] == []


async def test_replay_gives_the_snapshot_past_the_backlog(unthrottled_server: LiveServer) -> None:
    job, seen = await _missed_events(unthrottled_server, TEST_BACKLOG + 1)
    back = await connect_user(unthrottled_server, "u1")
    ack = await back.ok("job:subscribe", {"job_id": job["id"], "after_seq": seen})
    assert ack["recovered"] is False
    assert ack["events"] == []
    assert ack["job"]["seq"] == seen + TEST_BACKLOG + 1
    # Exactly the backlog behind still recovers.
    edge = await back.ok("job:subscribe", {"job_id": job["id"], "after_seq": seen + 1})
    assert edge["recovered"] is True
    assert len(edge["events"]) == TEST_BACKLOG


async def test_replay_gives_the_snapshot_for_another_epoch_a_cursor_ahead_or_none(
    unthrottled_server: LiveServer,
) -> None:
    job, seen = await _missed_events(unthrottled_server, 2)
    back = await connect_user(unthrottled_server, "u1")
    for payload in [
        {"job_id": job["id"], "after_seq": seen, "epoch": "another-epoch"},
        {"job_id": job["id"], "after_seq": seen + 50},
        {"job_id": job["id"]},
    ]:
        ack = await back.ok("job:subscribe", payload)
        assert ack["recovered"] is False, payload
        assert ack["events"] == [], payload
        assert ack["job"]["seq"] == seen + 2
    # Still subscribed: live events arrive.
    await back.ok("job:cancel", {"job_id": job["id"]})
    cancelled = await back.events.wait_for_job_event(job["id"], "job:cancelled")
    assert cancelled["seq"] == seen + 3


async def test_sync_answers_per_job(live_server: LiveServer) -> None:
    u1 = await connect_user(live_server, "u1")
    u2 = await connect_user(live_server, "u2")
    mine = await _create(u1)
    other = await _create(u1, "trade")
    await u1.ok("job:pause", {"job_id": other["id"]})
    theirs = await _create(u2)
    missing = str(uuid.uuid4())
    ack = await u1.ok(
        "job:sync",
        {
            "cursors": {mine["id"]: 1, other["id"]: 0, theirs["id"]: 0, missing: 0, "junk": 0},
            "epochs": {other["id"]: other["epoch"]},
        },
    )
    results = ack["results"]
    assert results[mine["id"]] == {
        "recovered": True,
        "events": [],
        "job": results[mine["id"]]["job"],
    }
    assert [e["type"] for e in results[other["id"]]["events"]] == ["job:created", "job:paused"]
    for key in [theirs["id"], missing, "junk"]:
        assert set(results[key]) == {"error"}
        assert results[key]["error"]["code"] == "not_found"
    assert "u2" not in str(results[theirs["id"]])
    stale = await u1.ok("job:sync", {"cursors": {mine["id"]: 0}, "epochs": {mine["id"]: "x"}})
    assert stale["results"][mine["id"]]["recovered"] is False


JOB = "00000000-0000-4000-8000-000000000000"

#: (event, payload, field named in the error) for every user call.
BAD_USER_PAYLOADS: list[tuple[str, Any, str | None]] = [
    ("job:subscribe", {}, "job_id"),
    ("job:subscribe", {"job_id": 5}, "job_id"),
    ("job:subscribe", {"job_id": "not-a-uuid"}, "job_id"),
    ("job:subscribe", {"job_id": JOB, "after_seq": -1}, "after_seq"),
    ("job:subscribe", {"job_id": JOB, "after_seq": 1.5}, "after_seq"),
    ("job:subscribe", {"job_id": JOB, "after_seq": "3"}, "after_seq"),
    ("job:subscribe", {"job_id": JOB, "after_seq": True}, "after_seq"),
    ("job:subscribe", {"job_id": JOB, "epoch": 7}, "epoch"),
    ("job:unsubscribe", {}, "job_id"),
    ("job:unsubscribe", {"job_id": ["x"]}, "job_id"),
    ("job:sync", {}, "cursors"),
    ("job:sync", {"cursors": [JOB]}, "cursors"),
    ("job:sync", {"cursors": {JOB: -1}}, f"cursors.{JOB}"),
    ("job:sync", {"cursors": {JOB: "1"}}, f"cursors.{JOB}"),
    ("job:sync", {"cursors": {JOB: 1}, "epochs": {JOB: 1}}, "epochs"),
    ("job:sync", {"cursors": {JOB: 1}, "epochs": "e"}, "epochs"),
    ("job:create", {}, "type"),
    ("job:create", {"type": "Bad Type"}, "type"),
    ("job:create", {"type": "x" * 65}, "type"),
    ("job:create", {"type": 3}, "type"),
    ("job:create", {"type": "ok", "input": [1, 2]}, "input"),
    ("job:create", {"type": "ok", "input": "text"}, "input"),
    ("job:pause", {}, "job_id"),
    ("job:resume", {"job_id": None}, "job_id"),
    ("job:cancel", {"job_id": 12}, "job_id"),
    ("job:restart", {"job_id": "nope"}, "job_id"),
    ("job:recovery", {"job_id": {}}, "job_id"),
]


@pytest.mark.parametrize(("event", "payload", "field"), BAD_USER_PAYLOADS)
async def test_bad_payloads_are_validation_errors(
    start_server: StartServer, event: str, payload: Any, field: str | None
) -> None:
    server = await start_server()
    user = await connect_user(server, "u1")
    error = await user.refused(event, payload, code="validation_error")
    assert error["details"]["field"] == field
    assert user.connected


@pytest.mark.parametrize("event", list(CALLS["/"]))
async def test_a_payload_that_is_not_an_object_is_a_validation_error(
    start_server: StartServer, event: str
) -> None:
    server = await start_server()
    user = await connect_user(server, "u1")
    for payload in ["text", 42, [1, 2], True]:
        error = await user.refused(event, payload, code="validation_error")
        assert error["details"] == {"field": "payload"}
    await user.refused(event, code="validation_error")  # no payload at all
    await server.assert_healthy()


async def test_unknown_events_are_bad_requests(live_server: LiveServer) -> None:
    user = await connect_user(live_server, "u1")
    error = await user.refused("job:explode", {"job_id": JOB}, code="bad_request")
    assert error["details"] == {"event": "job:explode"}
    await user.refused("claim", {}, code="bad_request")  # a worker call, on the wrong namespace
    assert user.connected
    await live_server.assert_healthy()


async def test_an_unexpected_error_is_logged_and_acked_generically(
    live_server: LiveServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    break_repository(monkeypatch, live_server, "create")
    user = await connect_user(live_server, "u1")
    error = await user.refused("job:create", {"type": "t"}, code="internal_error")
    assert "secret" not in error["message"]
    assert "Traceback" not in error["message"]
    assert secret_logged(caplog), "the exception is logged with its traceback"
    monkeypatch.undo()
    await live_server.assert_healthy()


@pytest.mark.parametrize("transports", [["websocket"], ["polling"]])
async def test_stopping_drops_clients_for_reconnection_and_leaves_no_task(
    transports: list[str],
) -> None:
    before = asyncio.all_tasks()
    reasons: asyncio.Queue[str] = asyncio.Queue()
    async with running_server() as server:
        user = await connect_user(server, "u1", transports=transports)
        await _create(user)

        async def disconnected(reason: str = "") -> None:
            await reasons.put(reason)

        user.sio.on("disconnect", disconnected, namespace="/")
        server.clients.remove(user)  # let the server drop it rather than the client leave
    # A transport drop, not a goodbye: clients with reconnection on come back.
    assert await asyncio.wait_for(reasons.get(), TIMEOUT_S) == "transport error"
    await user.disconnect()
    leftover = [
        task
        for task in asyncio.all_tasks() - before - {asyncio.current_task()}
        if "engineio/async_socket" in repr(task) or "/server/" in repr(task)
    ]
    assert leftover == []


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"type": "t", "input": {"text": "a\x00b"}}, "input"),
        ({"type": "t", "input": {"text": "\ud800"}}, "input"),
        ({"type": "t", "input": {"n": 10**120}}, "input"),
    ],
    ids=["nul", "lone-surrogate", "overlong-integer"],
)
async def test_create_refuses_input_no_store_or_client_can_hold(
    live_server: LiveServer, payload: dict[str, Any], field: str
) -> None:
    user = await connect_user(live_server, "u1")
    error = await user.refused("job:create", payload, code="validation_error")
    assert error["details"] == {"field": field}
    status, page = await live_server.rest("GET", "/api/jobs", token=live_server.token("u1"))
    assert (status, page["items"]) == (200, [])


async def test_an_overlong_integer_anywhere_in_a_call_still_gets_an_ack(
    live_server: LiveServer,
) -> None:
    # python-socketio's own parser drops such a packet, so the call never got an ack.
    user = await connect_user(live_server, "u1")
    job = (await user.ok("job:create", {"type": "t"}))["job"]
    error = await user.refused(
        "job:subscribe", {"job_id": job["id"], "after_seq": 10**120}, code="validation_error"
    )
    assert error["details"] == {"field": "after_seq"}
    assert user.connected
