"""The REST API on a real port, its routes: create and read, listing with cursors and
filters, steering, events, recovery, checkpoints, stats, and another user's jobs. Refusals
are in ``test_rest_errors.py``; health, readiness, metrics and outages in ``test_rest_ops.py``."""

from __future__ import annotations

from jobspine_shared.states import JobState
from tests.support.rest import JOB_ROUTES, assert_envelope, create_via_rest
from tests.support.server import LiveServer, connect_user, connect_worker


async def test_create_and_read_bare_snapshots(live_server: LiveServer) -> None:
    token = live_server.token("u1")
    job = await create_via_rest(live_server, token, query="x")
    assert job["user_id"] == "u1"
    assert job["state"] == "created"
    assert job["seq"] == 1
    assert job["input"] == {"query": "x"}
    assert job["schema_version"] == 2
    status, same = await live_server.rest("GET", f"/api/jobs/{job['id']}", token=token)
    assert status == 200
    assert same == job
    status, default_input = await live_server.rest(
        "POST", "/api/jobs", token=token, json={"type": "trade"}
    )
    assert status == 201
    assert default_input["input"] == {}


async def test_listing_is_newest_first_with_cursor_pagination_and_filters(
    live_server: LiveServer,
) -> None:
    u1, u2 = live_server.token("u1"), live_server.token("u2")
    created = [
        (await create_via_rest(live_server, u1, "research" if i % 2 else "trade"))["id"]
        for i in range(5)
    ]
    theirs = await create_via_rest(live_server, u2)
    pages: list[str] = []
    cursor: str | None = None
    while True:
        path = "/api/jobs?limit=2" + (f"&cursor={cursor}" if cursor else "")
        status, page = await live_server.rest("GET", path, token=u1)
        assert status == 200
        assert set(page) == {"items", "next_cursor"}
        pages += [j["id"] for j in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == list(reversed(created))

    status, research = await live_server.rest("GET", "/api/jobs?type=research", token=u1)
    assert [j["id"] for j in research["items"]] == [created[3], created[1]]
    await live_server.rest("POST", f"/api/jobs/{created[0]}/cancel", token=u1)
    status, cancelled = await live_server.rest("GET", "/api/jobs?state=cancelled", token=u1)
    assert [j["id"] for j in cancelled["items"]] == [created[0]]

    # A user's user_id filter cannot widen the view; an admin's narrows it.
    status, mine = await live_server.rest("GET", "/api/jobs?user_id=u2", token=u1)
    assert theirs["id"] not in [j["id"] for j in mine["items"]]
    admin = live_server.token("root", "admin")
    status, everyone = await live_server.rest("GET", "/api/jobs?limit=50", token=admin)
    assert {j["id"] for j in everyone["items"]} >= {*created, theirs["id"]}
    status, only_u2 = await live_server.rest("GET", "/api/jobs?user_id=u2", token=admin)
    assert [j["id"] for j in only_u2["items"]] == [theirs["id"]]


async def test_steering_endpoints_return_the_job_after_the_change(
    live_server: LiveServer,
) -> None:
    token = live_server.token("u1")
    job_id = (await create_via_rest(live_server, token))["id"]
    base = f"/api/jobs/{job_id}"
    status, held = await live_server.rest("POST", f"{base}/pause", token=token)
    assert (status, held["state"]) == (200, "paused")
    status, body = await live_server.rest("POST", f"{base}/pause", token=token)
    error = assert_envelope(body, "invalid_transition")
    assert status == 409
    assert error["details"]["state"] == "paused"
    status, resumed = await live_server.rest("POST", f"{base}/resume", token=token)
    assert (status, resumed["state"]) == (200, "created")
    status, body = await live_server.rest("POST", f"{base}/restart", token=token)
    assert status == 409
    assert assert_envelope(body, "invalid_transition")["details"] == {
        "state": "created",
        "action": "restart",
    }
    status, cancelled = await live_server.rest("POST", f"{base}/cancel", token=token)
    assert (status, cancelled["state"]) == (200, "cancelled")
    status, restarted = await live_server.rest(
        "POST", f"{base}/restart", token=token, json={"input": {"v": 2}}
    )
    assert (status, restarted["state"], restarted["input"]) == (200, "created", {"v": 2})
    status, body = await live_server.rest(
        "POST", f"{base}/restart", token=token, json={"input": [1]}
    )
    assert status == 422
    assert assert_envelope(body, "validation_error")["details"] == {"field": "input"}

    status, audit = await live_server.rest("GET", f"{base}/audit", token=token)
    assert status == 200
    assert audit["next_cursor"] is None
    assert [item["action"] for item in audit["items"]] == ["pause", "resume", "cancel", "restart"]
    assert all(set(item) == {"action", "actor", "at", "details"} for item in audit["items"])
    assert {item["actor"] for item in audit["items"]} == {"u1"}


async def test_the_audit_trail_pages_like_the_job_list(live_server: LiveServer) -> None:
    token = live_server.token("u1")
    base = f"/api/jobs/{(await create_via_rest(live_server, token))['id']}"
    for _ in range(3):
        for action in ("pause", "resume"):
            assert (await live_server.rest("POST", f"{base}/{action}", token=token))[0] == 200
    actions, query, pages = [], "?limit=4", 0
    while True:
        status, page = await live_server.rest("GET", f"{base}/audit{query}", token=token)
        assert status == 200, page
        actions += [item["action"] for item in page["items"]]
        pages += 1
        if page["next_cursor"] is None:
            break
        query = f"?limit=4&cursor={page['next_cursor']}"
    assert (pages, actions) == (2, ["pause", "resume"] * 3)
    for bad in ("?limit=0", "?limit=201", "?cursor=nope", "?limit=x"):
        status, body = await live_server.rest("GET", f"{base}/audit{bad}", token=token)
        assert status == 422, bad
        assert_envelope(body, "validation_error")


async def test_events_recovery_and_checkpoint(live_server: LiveServer) -> None:
    token = live_server.token("u1")
    job = await create_via_rest(live_server, token)
    base = f"/api/jobs/{job['id']}"
    status, body = await live_server.rest("GET", f"{base}/checkpoint", token=token)
    assert status == 404
    assert assert_envelope(body, "not_found")

    worker = await connect_worker(live_server)
    lease = (await worker.ok("claim", {}))["lease"]
    fenced = {"job_id": job["id"], "lease": lease}
    await worker.ok("checkpoint", {**fenced, "data": {"step": 2, "notes": "é"}, "progress": 40})
    await connect_user(live_server, "u1")

    status, replay = await live_server.rest("GET", f"{base}/events?after_seq=1", token=token)
    assert status == 200
    assert set(replay) == {"events", "recovered", "job"}
    assert replay["recovered"] is True
    assert [e["type"] for e in replay["events"]] == ["job:started", "job:checkpoint"]
    assert replay["job"]["has_checkpoint"] is True
    status, snapshot = await live_server.rest("GET", f"{base}/events", token=token)
    assert snapshot["recovered"] is False
    assert snapshot["events"] == []
    status, other_epoch = await live_server.rest(
        "GET", f"{base}/events?after_seq=1&epoch=nope", token=token
    )
    assert other_epoch["recovered"] is False
    status, current = await live_server.rest(
        "GET", f"{base}/events?after_seq=3&epoch={job['epoch']}", token=token
    )
    assert current["recovered"] is True
    assert current["events"] == []

    status, checkpoint = await live_server.rest("GET", f"{base}/checkpoint", token=token)
    assert status == 200
    assert set(checkpoint) == {"data", "saved_at", "size_bytes", "progress"}
    assert checkpoint["data"] == {"step": 2, "notes": "é"}
    assert checkpoint["progress"] == 40
    assert checkpoint["size_bytes"] == len('{"step":2,"notes":"é"}'.encode())

    status, options = await live_server.rest("GET", f"{base}/recovery", token=token)
    assert status == 200
    assert {
        "resumable",
        "restartable",
        "checkpoint",
        "recovery_attempts",
        "max_recovery_attempts",
    } <= set(options)
    assert set(options["checkpoint"]) == {"present", "size_bytes", "keys", "saved_at", "progress"}
    assert options["checkpoint"]["present"] is True
    assert options["checkpoint"]["keys"] == ["step", "notes"]
    status, body = await live_server.rest(
        "GET", f"{base}/checkpoint", token=live_server.token("u2")
    )
    assert status == 404
    status, _ = await live_server.rest(
        "GET", f"{base}/checkpoint", token=live_server.token("root", "admin")
    )
    assert status == 200


async def test_stats_count_the_callers_jobs_or_all_for_an_admin(live_server: LiveServer) -> None:
    u1, u2 = live_server.token("u1"), live_server.token("u2")
    await create_via_rest(live_server, u1)
    paused = await create_via_rest(live_server, u1)
    await live_server.rest("POST", f"/api/jobs/{paused['id']}/pause", token=u1)
    await create_via_rest(live_server, u2)
    status, mine = await live_server.rest("GET", "/api/stats", token=u1)
    assert status == 200
    assert set(mine) == {"by_state", "total"}
    assert set(mine["by_state"]) == {s.value for s in JobState}
    assert mine["total"] == 2
    assert mine["by_state"]["created"] == 1
    assert mine["by_state"]["paused"] == 1
    status, everyone = await live_server.rest(
        "GET", "/api/stats", token=live_server.token("root", "admin")
    )
    assert everyone["total"] == 3


async def test_other_users_jobs_are_not_found(live_server: LiveServer) -> None:
    job = await create_via_rest(live_server, live_server.token("u1"))
    other = live_server.token("u2")
    for method, suffix in JOB_ROUTES:
        status, body = await live_server.rest(method, f"/api/jobs/{job['id']}{suffix}", token=other)
        assert status == 404, (method, suffix)
        assert_envelope(body, "not_found")
