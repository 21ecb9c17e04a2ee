"""The supervisor as the web process runs it: started by the app, seen by clients, driven by admins.

No test waits for a heartbeat to time out: the timeout is a minute and a test makes a job
stale by ageing its heartbeat (:mod:`tests.support.staleness`); every wait is a condition
with a deadline.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from server.keys import SUPERVISOR
from server.store.base import JobStore
from tests.support.server import LiveServer, StartServer, connect_user, connect_worker
from tests.support.staleness import HeartbeatAging, aging_store

log = logging.getLogger(__name__)

HEARTBEAT_TIMEOUT_S = 60.0
#: Past the timeout: what a test ages a heartbeat by to make its job stale.
STALE_BY_S = HEARTBEAT_TIMEOUT_S + 1
FAST = {"HEARTBEAT_TIMEOUT_S": str(HEARTBEAT_TIMEOUT_S), "SUPERVISOR_INTERVAL_S": "0.1"}
#: A supervisor that ticks once at start-up and then not again during a test.
IDLE = {"HEARTBEAT_TIMEOUT_S": str(HEARTBEAT_TIMEOUT_S), "SUPERVISOR_INTERVAL_S": "3600"}
USER = "alice"


def parse(at: str) -> datetime:
    return datetime.fromisoformat(at.replace("Z", "+00:00"))


@pytest.fixture(params=["memory", pytest.param("postgres", marks=pytest.mark.postgres)])
async def aged_store(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[JobStore, HeartbeatAging]]:
    """Each store in turn (the memory one on a manual clock), with the way to age it."""
    async with aging_store(request.param, request) as opened:
        yield opened


@pytest.fixture
def aging(aged_store: tuple[JobStore, HeartbeatAging]) -> HeartbeatAging:
    return aged_store[1]


@pytest.fixture
async def fast_server(
    aged_store: tuple[JobStore, HeartbeatAging], start_server: StartServer
) -> LiveServer:
    """A server whose supervisor ticks often, on each store in turn."""
    return await start_server(env=FAST, store=aged_store[0])


@pytest.fixture
async def idle_server(
    aged_store: tuple[JobStore, HeartbeatAging], start_server: StartServer
) -> LiveServer:
    """A server whose supervisor ticks only at start-up, on each store in turn."""
    return await start_server(env=IDLE, store=aged_store[0])


async def running_job(server: LiveServer, *, checkpoint: bool) -> tuple[str, str, Any]:
    """A job claimed by a raw worker (which then goes silent); (job id, lease, worker)."""
    owner = await connect_user(server, USER)
    job = (await owner.ok("job:create", {"type": "research", "input": {}}))["job"]
    worker = await connect_worker(server)
    claim = await worker.ok("claim", {"types": ["research"]})
    assert claim["job"]["id"] == job["id"]
    lease = claim["lease"]
    if checkpoint:
        await worker.ok(
            "checkpoint",
            {"job_id": job["id"], "lease": lease, "data": {"completed_steps": 1}, "progress": 20},
        )
    return job["id"], lease, worker


async def test_the_app_runs_its_supervisor_and_a_stale_job_reaches_the_client_paused(
    fast_server: LiveServer, aging: HeartbeatAging
) -> None:
    server = fast_server
    watcher = await connect_user(server, USER)
    job_id, lease, worker = await running_job(server, checkpoint=True)
    beat = await worker.ok("heartbeat", {"job_id": job_id, "lease": lease})
    assert beat["pause_requested"] is False
    await aging.age(job_id, STALE_BY_S)

    recovery = await watcher.events.wait_for_job_event(job_id, "job:recovery")
    paused = await watcher.events.wait_for_job_event(job_id, "job:paused")
    received = datetime.now(UTC)

    assert paused["data"] == {"reason": "stalled"}
    assert recovery["seq"] == paused["seq"] + 1
    assert recovery["data"]["resumable"] is True
    assert recovery["data"]["checkpoint"]["present"] is True
    assert recovery["data"]["recovery_attempts"] == 1
    status, job = await server.rest("GET", f"/api/jobs/{job_id}", token=server.token(USER))
    assert status == 200
    assert job["state"] == "paused"
    last_beat = parse(job["last_heartbeat_at"])
    detected = parse(paused["at"])
    # Never before the job was stale: detection is at least the timeout after the last beat.
    assert (detected - last_beat).total_seconds() >= HEARTBEAT_TIMEOUT_S
    log.info(
        "stale-job timeline: last heartbeat %s, paused %s (+%.3f s), client received %s "
        "(+%.3f s); HEARTBEAT_TIMEOUT_S=%s SUPERVISOR_INTERVAL_S=%s",
        last_beat.isoformat(),
        detected.isoformat(),
        (detected - last_beat).total_seconds(),
        received.isoformat(),
        (received - last_beat).total_seconds(),
        FAST["HEARTBEAT_TIMEOUT_S"],
        FAST["SUPERVISOR_INTERVAL_S"],
    )

    # The zombie worker wakes up: every write under its old lease is refused.
    for event, payload in [
        ("heartbeat", {"job_id": job_id, "lease": lease}),
        ("progress", {"job_id": job_id, "lease": lease, "progress": 50}),
        ("checkpoint", {"job_id": job_id, "lease": lease, "data": {"completed_steps": 2}}),
        ("complete", {"job_id": job_id, "lease": lease, "result": {}}),
        ("fail", {"job_id": job_id, "lease": lease, "error": {"message": "late"}}),
    ]:
        await worker.refused(event, payload, code="lease_lost")
    status, after = await server.rest("GET", f"/api/jobs/{job_id}", token=server.token(USER))
    assert after["state"] == "paused"
    assert after["seq"] == recovery["seq"]

    status, body = await server.rest(
        "GET", "/api/admin/supervisor", token=server.token("root", "admin")
    )
    assert status == 200, body
    assert body["running"] is True
    assert body["paused"] >= 1
    assert body["recovered"] == body["paused"] + body["failed"]
    assert body["heartbeat_timeout_s"] == HEARTBEAT_TIMEOUT_S
    assert body["last_run_at"] is not None


async def test_a_stale_job_without_checkpoint_fails_worker_lost_for_the_client(
    fast_server: LiveServer, aging: HeartbeatAging
) -> None:
    watcher = await connect_user(fast_server, USER)
    job_id, _, _ = await running_job(fast_server, checkpoint=False)
    await aging.age(job_id, STALE_BY_S)

    failed = await watcher.events.wait_for_job_event(job_id, "job:failed")

    assert failed["data"]["error"]["code"] == "worker_lost"
    assert [e["type"] for e in watcher.events.of_job(job_id)].count("job:failed") == 1


async def test_supervisor_status_is_for_admins_only(start_server: StartServer) -> None:
    server = await start_server(env=IDLE)

    status, body = await server.rest("GET", "/api/admin/supervisor")
    assert (status, body["error"]["code"]) == (401, "unauthorized")
    status, body = await server.rest("GET", "/api/admin/supervisor", token=server.token(USER))
    assert (status, body["error"]["code"]) == (403, "forbidden")
    status, body = await server.rest(
        "GET", "/api/admin/supervisor", token=server.token("w", "worker")
    )
    assert (status, body["error"]["code"]) == (403, "forbidden")
    status, body = await server.rest(
        "GET", "/api/admin/supervisor", token=server.token("root", "admin")
    )
    assert status == 200
    assert body["interval_s"] == 3600
    assert body["ticks"] >= 1  # the tick at start-up
    assert set(body) >= {"last_run_at", "last_scanned", "scanned", "recovered", "failed", "errors"}


async def test_an_admin_check_recovers_a_stale_job_without_waiting_for_the_next_tick(
    idle_server: LiveServer, aging: HeartbeatAging
) -> None:
    server = idle_server
    admin = server.token("root", "admin")
    watcher = await connect_user(server, USER)
    job_id, _, _ = await running_job(server, checkpoint=True)
    path = f"/api/admin/jobs/{job_id}/check"

    status, body = await server.rest("POST", path, token=admin)
    assert status == 200, body
    assert body["recovered"] is False  # heartbeat of the claim is fresh
    assert body["job"]["state"] == "running"

    await aging.age(job_id, STALE_BY_S)
    status, checked = await server.rest("POST", path, token=admin)
    assert status == 200, checked
    assert checked["recovered"] is True
    assert checked["job"]["state"] == "paused"
    assert checked["job"]["recovery_attempts"] == 1
    paused = await watcher.events.wait_for_job_event(job_id, "job:paused")
    assert paused["data"] == {"reason": "stalled"}
    status, again = await server.rest("POST", path, token=admin)
    assert (status, again["recovered"], again["job"]["seq"]) == (200, False, checked["job"]["seq"])
    assert server.app[SUPERVISOR].status.paused == 0  # the check did it, not the loop


async def test_only_admins_check_jobs_and_unknown_jobs_are_not_found(
    start_server: StartServer,
) -> None:
    server = await start_server(env=IDLE)
    owner = await connect_user(server, USER)
    job = (await owner.ok("job:create", {"type": "research", "input": {}}))["job"]

    status, body = await server.rest(
        "POST", f"/api/admin/jobs/{job['id']}/check", token=server.token(USER)
    )
    assert (status, body["error"]["code"]) == (403, "forbidden")
    status, body = await server.rest(
        "POST",
        "/api/admin/jobs/00000000-0000-4000-8000-000000000000/check",
        token=server.token("root", "admin"),
    )
    assert (status, body["error"]["code"]) == (404, "not_found")
    status, body = await server.rest(
        "POST", "/api/admin/jobs/not-a-job/check", token=server.token("root", "admin")
    )
    assert (status, body["error"]["code"]) == (404, "not_found")
