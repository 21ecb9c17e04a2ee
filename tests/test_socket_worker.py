"""The worker namespace ``/workers`` over a real socket: the RPCs and their acks, leases and
fencing, atomic claims, and the refusal of every malformed payload."""

from __future__ import annotations

import asyncio
import json
import math
import uuid
from typing import Any

import pytest

from tests.support.server import (
    LiveServer,
    SocketClient,
    StartServer,
    connect_user,
    connect_worker,
)

JOB = "00000000-0000-4000-8000-000000000000"


async def _create(user: SocketClient, type: str = "research") -> dict[str, Any]:
    job: dict[str, Any] = (await user.ok("job:create", {"type": type, "input": {}}))["job"]
    return job


async def _claim(worker: SocketClient, **payload: Any) -> dict[str, Any]:
    ack = await worker.ok("claim", payload)
    assert set(ack) == {"ok", "job", "lease", "checkpoint"}
    return ack


async def _claimed_job(
    server: LiveServer,
) -> tuple[SocketClient, SocketClient, dict[str, Any], str]:
    """A user, a job of theirs, and a worker holding it: (user, worker, job, lease)."""
    user = await connect_user(server)
    job = await _create(user)
    worker = await connect_worker(server)
    lease: str = (await _claim(worker))["lease"]
    return user, worker, job, lease


async def test_claim_with_nothing_to_do_acks_three_nulls(live_server: LiveServer) -> None:
    worker = await connect_worker(live_server)
    assert await _claim(worker) == {"ok": True, "job": None, "lease": None, "checkpoint": None}
    user = await connect_user(live_server)
    await _create(user, "trade")
    assert (await _claim(worker, types=["research"]))["job"] is None


async def test_a_job_driven_to_completion_delivers_every_event_once_in_order(
    live_server: LiveServer,
) -> None:
    user = await connect_user(live_server, "u1")
    job = await _create(user)
    await user.ok("job:subscribe", {"job_id": job["id"]})  # user and job room: still once
    worker = await connect_worker(live_server, "worker-7")
    claim = await _claim(worker, types=["research"], worker_id="pool-a/1")
    assert claim["job"]["state"] == "running"
    assert claim["job"]["attempt"] == 1
    assert claim["checkpoint"] is None
    assert isinstance(claim["lease"], str)
    job_id, lease = job["id"], claim["lease"]
    fenced = {"job_id": job_id, "lease": lease}

    assert await worker.ok("heartbeat", fenced) == {"ok": True, "pause_requested": False}
    assert await worker.ok("progress", {**fenced, "progress": 25, "step": "step 1/4"}) == {
        "ok": True
    }
    checkpoint = await worker.ok("checkpoint", {**fenced, "data": {"k": 1}, "progress": 50})
    assert set(checkpoint) == {"ok", "checkpoint_at"}
    assert checkpoint["checkpoint_at"].endswith("Z")
    await worker.ok("progress", {**fenced, "progress": 50})  # equal is fine
    assert await worker.ok("complete", {**fenced, "result": {"answer": 42}}) == {"ok": True}

    await user.events.wait_for_job_event(job_id, "job:completed")
    events = user.events.of_job(job_id)
    assert [e["type"] for e in events] == [
        "job:created",
        "job:started",
        "job:progress",
        "job:checkpoint",
        "job:progress",
        "job:completed",
    ]
    assert [e["seq"] for e in events] == list(range(1, 7))
    assert {e["epoch"] for e in events} == {job["epoch"]}
    _, started, progress, saved, _, completed = (e["data"] for e in events)
    assert started == {"attempt": 1, "worker_id": "pool-a/1", "resumed": False}
    assert progress == {"progress": 25.0, "step": "step 1/4"}
    assert saved == {"size_bytes": len(b'{"k":1}'), "progress": 50.0}
    assert completed == {"result": {"answer": 42}}
    snapshot = (await user.ok("job:subscribe", {"job_id": job_id}))["job"]
    assert snapshot["state"] == "completed"
    assert snapshot["result"] == {"answer": 42}
    assert snapshot["progress"] == 100


async def test_fail_records_the_error(live_server: LiveServer) -> None:
    user, worker, job, lease = await _claimed_job(live_server)
    error = {"message": "upstream down", "code": "upstream", "retryable": True}
    await worker.ok("fail", {"job_id": job["id"], "lease": lease, "error": error})
    failed = await user.events.wait_for_job_event(job["id"], "job:failed")
    assert failed["data"] == {"error": error}
    lease2 = None
    restarted = (await user.ok("job:restart", {"job_id": job["id"]}))["job"]
    assert restarted["error"] is None
    assert restarted["state"] == "created"
    lease2 = (await _claim(worker))["lease"]
    await worker.ok("fail", {"job_id": job["id"], "lease": lease2, "error": {"message": "x"}})
    snapshot = (await user.ok("job:subscribe", {"job_id": job["id"]}))["job"]
    assert snapshot["error"] == {"code": "job_failed", "message": "x", "retryable": False}


async def test_pause_request_checkpoint_resume_and_reclaim(live_server: LiveServer) -> None:
    user, worker, job, lease = await _claimed_job(live_server)
    fenced = {"job_id": job["id"], "lease": lease}
    await worker.ok("progress", {**fenced, "progress": 30})
    await worker.refused("paused", fenced, code="invalid_transition")  # nothing was requested

    assert (await user.ok("job:pause", {"job_id": job["id"]}))["job"]["pause_requested"] is True
    assert await worker.ok("heartbeat", fenced) == {"ok": True, "pause_requested": True}
    await worker.ok("paused", {**fenced, "checkpoint": {"done": 3}})
    paused = await user.events.wait_for_job_event(job["id"], "job:paused")
    assert paused["data"] == {"reason": "user"}

    await user.ok("job:resume", {"job_id": job["id"]})
    again = await _claim(worker)
    assert again["checkpoint"] == {"done": 3}
    assert again["job"]["attempt"] == 2
    assert again["job"]["progress"] == 30
    started = [e for e in user.events.of_job(job["id"]) if e["type"] == "job:started"]
    await user.events.wait_for(
        lambda _: len([e for e in user.events.of_job(job["id"]) if e["type"] == "job:started"]) == 2
    )
    started = [e for e in user.events.of_job(job["id"]) if e["type"] == "job:started"]
    assert started[-1]["data"]["resumed"] is True

    # The old lease is fenced off now that the job runs under a new one.
    error = await worker.refused("progress", {**fenced, "progress": 40}, code="lease_lost")
    assert error["details"]["state"] == "running"
    await worker.refused(
        "progress",
        {"job_id": job["id"], "lease": again["lease"], "progress": 10},
        code="invalid_progress",
    )


async def test_cancel_fences_every_lease_carrying_call(live_server: LiveServer) -> None:
    user, worker, job, lease = await _claimed_job(live_server)
    fenced = {"job_id": job["id"], "lease": lease}
    cancelled = (await user.ok("job:cancel", {"job_id": job["id"]}))["job"]
    calls: list[tuple[str, dict[str, Any]]] = [
        ("heartbeat", fenced),
        ("progress", {**fenced, "progress": 90}),
        ("checkpoint", {**fenced, "data": {"x": 1}}),
        ("paused", fenced),
        ("complete", {**fenced, "result": 1}),
        ("fail", {**fenced, "error": {"message": "m"}}),
    ]
    for event, payload in calls:
        error = await worker.refused(event, payload, code="lease_lost")
        assert error["details"]["state"] == "cancelled", event
    after = (await user.ok("job:subscribe", {"job_id": job["id"]}))["job"]
    assert after["seq"] == cancelled["seq"]
    assert after["state"] == "cancelled"
    assert after["has_checkpoint"] is False

    wrong = {"job_id": job["id"], "lease": "not-the-lease"}
    await worker.refused("heartbeat", wrong, code="lease_lost")
    await worker.refused(
        "heartbeat", {"job_id": str(uuid.uuid4()), "lease": lease}, code="not_found"
    )


async def test_concurrent_claims_never_share_a_job(live_server: LiveServer) -> None:
    user = await connect_user(live_server)
    jobs = {(await _create(user))["id"] for _ in range(5)}
    workers = [await connect_worker(live_server, f"worker-{i}") for i in range(20)]
    acks = await asyncio.gather(*(w.ok("claim", {}) for w in workers))
    claimed = [a["job"]["id"] for a in acks if a["job"] is not None]
    assert len(claimed) == 5
    assert set(claimed) == jobs
    assert all(a["lease"] is None for a in acks if a["job"] is None)
    assert len({a["lease"] for a in acks if a["lease"] is not None}) == 5


FENCED = {"job_id": JOB, "lease": "l"}

#: (event, payload, field named in the error) for every worker call.
BAD_WORKER_PAYLOADS: list[tuple[str, Any, str]] = [
    ("claim", {"types": "research"}, "types"),
    ("claim", {"types": ["Bad Type"]}, "types"),
    ("claim", {"types": [1]}, "types"),
    ("claim", {"worker_id": 5}, "worker_id"),
    ("claim", {"worker_id": ""}, "worker_id"),
    ("heartbeat", {}, "job_id"),
    ("heartbeat", {"job_id": JOB}, "lease"),
    ("heartbeat", {"job_id": "nope", "lease": "l"}, "job_id"),
    ("heartbeat", {"job_id": JOB, "lease": 3}, "lease"),
    ("progress", FENCED, "progress"),
    ("progress", {**FENCED, "progress": "50"}, "progress"),
    ("progress", {**FENCED, "progress": True}, "progress"),
    ("progress", {**FENCED, "progress": -1}, "progress"),
    ("progress", {**FENCED, "progress": 100.5}, "progress"),
    ("progress", {**FENCED, "progress": 5, "step": 5}, "step"),
    ("progress", {**FENCED, "progress": 5, "step": "s" * 257}, "step"),
    ("progress", {"lease": "l", "progress": 5}, "job_id"),
    ("checkpoint", FENCED, "data"),
    ("checkpoint", {**FENCED, "data": [1]}, "data"),
    ("checkpoint", {**FENCED, "data": "blob"}, "data"),
    ("checkpoint", {**FENCED, "data": {}, "progress": "x"}, "progress"),
    ("paused", {"job_id": JOB}, "lease"),
    ("paused", {**FENCED, "checkpoint": "x"}, "checkpoint"),
    ("complete", {"job_id": 1, "lease": "l"}, "job_id"),
    ("complete", {"job_id": JOB}, "lease"),
    ("fail", FENCED, "error"),
    ("fail", {**FENCED, "error": "boom"}, "error"),
    ("fail", {**FENCED, "error": {}}, "error.message"),
    ("fail", {**FENCED, "error": {"message": 1}}, "error.message"),
    ("fail", {**FENCED, "error": {"message": "m", "code": 1}}, "error.code"),
    ("fail", {**FENCED, "error": {"message": "m", "retryable": "yes"}}, "error.retryable"),
    ("fail", {**FENCED, "error": {"message": "m" * 4097}}, "error.message"),
]


@pytest.mark.parametrize(("event", "payload", "field"), BAD_WORKER_PAYLOADS)
async def test_bad_payloads_are_validation_errors(
    start_server: StartServer, event: str, payload: Any, field: str
) -> None:
    server = await start_server()
    worker = await connect_worker(server)
    error = await worker.refused(event, payload, code="validation_error")
    assert error["details"]["field"] == field
    assert worker.connected


@pytest.mark.parametrize(
    "event", ["claim", "heartbeat", "progress", "checkpoint", "paused", "complete", "fail"]
)
async def test_a_payload_that_is_not_an_object_is_a_validation_error(
    start_server: StartServer, event: str
) -> None:
    server = await start_server()
    worker = await connect_worker(server)
    for payload in ["text", 7, [FENCED], None]:
        error = await worker.refused(event, payload, code="validation_error")
        assert error["details"] == {"field": "payload"}
    await server.assert_healthy()


async def test_non_finite_numbers_are_validation_errors(live_server: LiveServer) -> None:
    """The Python client writes NaN and Infinity as bare JSON words, as some clients do."""
    _, worker, job, lease = await _claimed_job(live_server)
    fenced = {"job_id": job["id"], "lease": lease}
    for value in [math.nan, math.inf, -math.inf]:
        error = await worker.refused(
            "progress", {**fenced, "progress": value}, code="validation_error"
        )
        assert error["details"]["field"] == "progress"
        await worker.refused(
            "checkpoint", {**fenced, "data": {}, "progress": value}, code="validation_error"
        )
    error = await worker.refused(
        "checkpoint", {**fenced, "data": {"x": math.nan}}, code="validation_error"
    )
    assert error["details"]["field"] == "data"
    await worker.refused("complete", {**fenced, "result": {"x": math.inf}}, code="validation_error")
    assert (await worker.ok("heartbeat", fenced))["pause_requested"] is False


async def test_an_oversize_checkpoint_is_refused_by_ack(start_server: StartServer) -> None:
    server = await start_server({"MAX_CHECKPOINT_BYTES": "1024"})
    user = await connect_user(server)
    job = await _create(user)
    worker = await connect_worker(server)
    lease = (await _claim(worker))["lease"]
    fenced = {"job_id": job["id"], "lease": lease}
    fits = {"blob": "x" * (1024 - len(b'{"blob":""}'))}
    assert len(json.dumps(fits, separators=(",", ":"))) == 1024
    await worker.ok("checkpoint", {**fenced, "data": fits})
    too_big = {"blob": "x" * 1024}
    error = await worker.refused(
        "checkpoint", {**fenced, "data": too_big}, code="payload_too_large"
    )
    assert error["details"] == {"size_bytes": 1024 + len(b'{"blob":""}'), "max_bytes": 1024}
    await worker.refused("paused", {**fenced, "checkpoint": too_big}, code="payload_too_large")
    assert worker.connected
    assert (await worker.ok("heartbeat", fenced))["pause_requested"] is False
    await server.assert_healthy()


async def test_the_default_limit_refuses_by_ack_and_counts_utf8_bytes(
    start_server: StartServer,
) -> None:
    """At the default 1 MiB: over the limit is an ack, not a dropped connection, and a
    checkpoint under it passes even when the client escapes every character (``\\uXXXX``)."""
    server = await start_server()
    limit = server.settings.max_checkpoint_bytes
    user = await connect_user(server)
    job = await _create(user)
    worker = await connect_worker(server)
    lease = (await _claim(worker))["lease"]
    fenced = {"job_id": job["id"], "lease": lease}
    over = {"blob": "x" * (limit + 1)}
    await worker.refused("checkpoint", {**fenced, "data": over}, code="payload_too_large")
    emoji = "\U0001f600"  # 4 bytes of UTF-8, 12 characters as the Python client sends it
    under = {"blob": emoji * ((limit - 20) // 4)}
    assert json.dumps(under).count("\\u") == 2 * len(under["blob"])
    ack = await worker.ok("checkpoint", {**fenced, "data": under}, within=30)
    assert ack["checkpoint_at"]
    saved = await user.events.wait_for_job_event(job["id"], "job:checkpoint")
    assert saved["data"]["size_bytes"] == len(
        json.dumps(under, ensure_ascii=False, separators=(",", ":")).encode()
    )
    assert worker.connected


async def test_unknown_job_ids_are_not_found_and_malformed_ones_validation_errors(
    live_server: LiveServer,
) -> None:
    worker = await connect_worker(live_server)
    unknown = {"job_id": str(uuid.uuid4()), "lease": "l"}
    calls: list[tuple[str, dict[str, Any]]] = [
        ("heartbeat", {}),
        ("progress", {"progress": 1}),
        ("checkpoint", {"data": {}}),
        ("paused", {}),
        ("complete", {}),
        ("fail", {"error": {"message": "m"}}),
    ]
    for event, extra in calls:
        await worker.refused(event, {**unknown, **extra}, code="not_found")
        await worker.refused(event, {**unknown, **extra, "job_id": "x"}, code="validation_error")


async def test_unknown_worker_events_are_bad_requests(live_server: LiveServer) -> None:
    worker = await connect_worker(live_server)
    await worker.refused("job:create", {"type": "t"}, code="bad_request")
    await worker.refused("steal", {}, code="bad_request")
    assert (await _claim(worker))["job"] is None


async def test_text_no_store_can_hold_is_refused_and_changes_nothing(
    live_server: LiveServer,
) -> None:
    """NUL (Postgres refuses it) and unpaired surrogates (UTF-8 cannot encode them)."""
    user = await connect_user(live_server)
    job = await _create(user)
    worker = await connect_worker(live_server)
    error = await worker.refused("claim", {"worker_id": "w\x00"}, code="validation_error")
    assert error["details"] == {"field": "worker_id"}
    lease = (await _claim(worker))["lease"]
    fenced = {"job_id": job["id"], "lease": lease}
    for bad in ["a\x00b", "\udc00"]:
        refusals = [
            ("heartbeat", {"job_id": job["id"], "lease": bad}, "lease"),
            ("progress", {**fenced, "progress": 50, "step": bad}, "step"),
            ("checkpoint", {**fenced, "data": {"k": bad}, "progress": 50}, "data"),
            ("checkpoint", {**fenced, "data": {bad: 1}}, "data"),
            ("complete", {**fenced, "result": {"k": bad}}, "result"),
            ("complete", {**fenced, "result": {"n": 10**120}}, "result"),
            ("fail", {**fenced, "error": {"message": bad}}, "error.message"),
            ("fail", {**fenced, "error": {"message": "m", "code": bad}}, "error.code"),
        ]
        for event, payload, field in refusals:
            error = await worker.refused(event, payload, code="validation_error")
            assert error["details"] == {"field": field}, (event, error)
    status, now = await live_server.rest(
        "GET", f"/api/jobs/{job['id']}", token=live_server.token("u1")
    )
    assert status == 200
    assert (now["state"], now["progress"], now["has_checkpoint"]) == ("running", 0.0, False)
    assert now["seq"] == 2  # created, started: nothing else
    assert (await worker.ok("heartbeat", fenced))["pause_requested"] is False


async def test_a_job_with_the_largest_numbers_allowed_is_claimed_by_a_python_worker(
    live_server: LiveServer,
) -> None:
    """Postgres writes ``9.9e98`` out as 99 digits: still short enough for python-socketio."""
    user = await connect_user(live_server)
    numbers = {"big": 9.9e98, "negative": -(10**99) + 1, "tiny": 1.5e-320}
    created = (await user.ok("job:create", {"type": "research", "input": numbers}))["job"]
    worker = await connect_worker(live_server)
    claim = await _claim(worker)
    assert claim["job"]["id"] == created["id"]
    received = claim["job"]["input"]
    assert set(received) == set(numbers)
    for name, value in numbers.items():  # Postgres may turn 9.9e98 into an integer
        assert float(received[name]) == pytest.approx(value, rel=1e-12, abs=0)
