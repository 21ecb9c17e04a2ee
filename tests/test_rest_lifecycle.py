"""REST of contract v2: every v2 create field, idempotent create (200 and its header,
409 conflict), DELETE /api/jobs/{id}, the tag/parent_id/priority filters, and the socket
ack of a replayed create."""

from __future__ import annotations

from typing import Any

from tests.support.server import LiveServer, connect_user


async def _post(server: LiveServer, token: str, body: dict[str, Any]) -> Any:
    async with server.http.post(
        server.url + "/api/jobs", json=body, headers={"Authorization": f"Bearer {token}"}
    ) as response:
        return response.status, response.headers.get("Idempotent-Replayed"), await response.json()


async def test_create_takes_every_v2_field(live_server: LiveServer) -> None:
    token = live_server.token("u1")
    status, _, parent = await _post(live_server, token, {"type": "research"})
    assert status == 201
    assert parent["schema_version"] == 2
    body = {
        "type": "research",
        "input": {"q": 1},
        "priority": 5,
        "run_at": "2030-01-01T00:00:00Z",
        "tags": ["batch:1"],
        "parent_id": parent["id"],
        "timeout_s": 30,
        "retry": {"max_attempts": 3, "backoff_s": 1, "backoff_factor": 2, "max_backoff_s": 10},
        "correlation_id": "corr-1",
    }
    status, _, job = await _post(live_server, token, body)
    assert status == 201, job
    for key in ("priority", "tags", "parent_id", "timeout_s", "correlation_id"):
        assert job[key] == body[key]
    assert job["run_at"] == "2030-01-01T00:00:00Z"
    assert job["retry"] == {
        "max_attempts": 3, "backoff_s": 1.0, "backoff_factor": 2.0, "max_backoff_s": 10.0
    }  # fmt: skip
    assert job["retries"] == 0
    status, page = await live_server.rest(
        "GET", f"/api/jobs?tag=batch:1&parent_id={parent['id']}&priority=5", token=token
    )
    assert status == 200
    assert [j["id"] for j in page["items"]] == [job["id"]]
    status, refused = await live_server.rest(
        "POST", "/api/jobs", token=token, json={"type": "research", "priority": 500}
    )
    assert status == 422
    assert refused["error"]["code"] == "validation_error"
    status, _ = await live_server.rest(
        "POST",
        "/api/jobs",
        token=live_server.token("u2"),
        json={"type": "research", "parent_id": parent["id"]},
    )
    assert status == 404


async def test_idempotent_create_over_rest_and_socket(live_server: LiveServer) -> None:
    token = live_server.token("u1")
    body = {"type": "research", "input": {"q": 1}, "idempotency_key": "order-7"}
    first = await _post(live_server, token, body)
    again = await _post(live_server, token, body)
    assert (first[0], first[1]) == (201, None)
    assert (again[0], again[1]) == (200, "true")
    assert again[2]["id"] == first[2]["id"]
    conflict = await _post(live_server, token, body | {"input": {"q": 2}})
    assert conflict[0] == 409
    assert conflict[2]["error"]["code"] == "conflict"
    user = await connect_user(live_server, "u1")
    try:
        ack = await user.call("job:create", body)
    finally:
        await user.disconnect()
    assert ack["ok"] is True
    assert ack["existing"] is True
    assert ack["job"]["id"] == first[2]["id"]


async def test_delete_a_final_job(live_server: LiveServer) -> None:
    token = live_server.token("u1")
    _, _, job = await _post(live_server, token, {"type": "research"})
    path = f"/api/jobs/{job['id']}"
    status, refused = await live_server.rest("DELETE", path, token=token)
    assert status == 409
    assert refused["error"]["code"] == "invalid_transition"
    status, _ = await live_server.rest("POST", path + "/cancel", token=token)
    assert status == 200
    status, _ = await live_server.rest("DELETE", path, token=live_server.token("u2"))
    assert status == 404
    status, body = await live_server.rest("DELETE", path, token=token)
    assert (status, body) == (204, "")
    for method, suffix in (("GET", ""), ("GET", "/events"), ("DELETE", "")):
        status, _ = await live_server.rest(method, path + suffix, token=token)
        assert status == 404
    _, metrics = await live_server.rest("GET", "/metrics")
    assert 'jobspine_jobs_deleted_total{reason="user"} 1' in metrics
