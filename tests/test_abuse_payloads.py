"""Issue 13 holes 3 and 7 over real sockets and HTTP: MAX_INPUT_BYTES for inputs and results
(``payload_too_large``, nothing stored), the byte bound of a client's send queue, and CORS
without credentials."""

from __future__ import annotations

import json
from typing import Any

import pytest

from server.actors import Actor, Role
from server.commands.user import parse_list
from server.realtime.backpressure import BoundedSendQueue
from tests.support.server import LiveServer, StartServer, connect_user, connect_worker

SMALL_LIMIT = {"MAX_INPUT_BYTES": "1000"}


@pytest.fixture
async def server(start_server: StartServer) -> LiveServer:
    """A server that takes inputs and results of :data:`SMALL_LIMIT` bytes at most."""
    return await start_server(env=SMALL_LIMIT)


async def test_an_oversize_input_is_refused_everywhere(server: LiveServer) -> None:
    user = await connect_user(server, "big")
    emoji = {"text": "\N{GRINNING FACE}" * 300}  # 1200 bytes of UTF-8
    error = await user.refused(
        "job:create", {"type": "t", "input": emoji}, code="payload_too_large"
    )
    assert error["details"]["limit"] == 1000
    status, body = await server.rest(
        "POST", "/api/jobs", token=server.token("big"), json={"type": "t", "input": emoji}
    )
    assert status == 413
    assert body["error"]["code"] == "payload_too_large"
    page = await server.repository.list_jobs(
        Actor(id="big", role=Role.USER), parse_list({"limit": 10})
    )
    assert page.items == ()
    await user.ok("job:create", {"type": "t", "input": {"text": "x" * 900}})


async def test_an_oversize_result_is_refused_and_the_job_keeps_running(
    server: LiveServer,
) -> None:
    user = await connect_user(server, "u1")
    job = (await user.ok("job:create", {"type": "t", "input": {}}))["job"]
    worker = await connect_worker(server)
    lease = (await worker.ok("claim", {}))["lease"]
    payload: dict[str, Any] = {"job_id": job["id"], "lease": lease, "result": {"x": "y" * 2000}}
    await worker.refused("complete", payload, code="payload_too_large")
    snapshot = await server.repository.get_job(Actor(id="u1"), job["id"])
    assert str(snapshot.state) == "running"
    await worker.ok("complete", {**payload, "result": {"x": "small"}})


class _Packet:
    def __init__(self, data: str) -> None:
        self.data = data


def test_the_send_queue_counts_bytes_beside_packets() -> None:
    overflows: list[BoundedSendQueue] = []
    queue = BoundedSendQueue(1000, overflows.append, max_bytes=100)
    queue.put_nowait(_Packet("a" * 60))
    queue.put_nowait(_Packet("b" * 30))
    assert queue.queued_bytes == 90
    queue.put_nowait(_Packet("c" * 20))  # 110 > 100: the client is dropped
    assert overflows == [queue]
    assert queue.qsize() == 2
    queue.get_nowait()
    assert queue.queued_bytes == 30


async def test_cors_origins_are_honoured_and_credentials_never_allowed(
    start_server: StartServer,
) -> None:
    server = await start_server(env={"CORS_ORIGINS": "https://app.example, https://b.example"})
    for path in ("/api/jobs", "/socket.io/?EIO=4&transport=polling"):
        async with server.http.get(
            server.url + path, headers={"Origin": "https://app.example"}
        ) as response:
            assert response.headers.get("Access-Control-Allow-Origin") == "https://app.example"
            assert "Access-Control-Allow-Credentials" not in response.headers
        async with server.http.get(
            server.url + path, headers={"Origin": "https://evil.example"}
        ) as response:
            assert "Access-Control-Allow-Origin" not in response.headers
            assert "Access-Control-Allow-Credentials" not in response.headers
    default = await start_server()
    async with default.http.get(
        default.url + "/socket.io/?EIO=4&transport=polling", headers={"Origin": "https://x.example"}
    ) as response:
        assert "Access-Control-Allow-Credentials" not in response.headers


async def test_sync_replies_are_bounded_and_mark_what_they_left_out(
    start_server: StartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("server.limits.reply_budget.MAX_SYNC_REPLY_BYTES", 6000)
    server = await start_server()
    user = await connect_user(server, "syncer")
    ids = [
        (await user.ok("job:create", {"type": "t", "input": {"blob": "z" * 900}}))["job"]["id"]
        for _ in range(6)
    ]
    ack = await user.ok("job:sync", {"cursors": dict.fromkeys(ids, 0)})
    results = ack["results"]
    assert set(results) == set(ids)
    served = [i for i in ids if "job" in results[i]]
    left = [i for i in ids if results[i] == {"truncated": True}]
    assert served, results
    assert left, results
    assert len(served) + len(left) == len(ids)
    assert len(json.dumps(ack)) < 6000 + 4000  # the budget, plus at most one slot past it
    again = await user.ok("job:sync", {"cursors": dict.fromkeys(left, 0)})
    assert any("job" in slot for slot in again["results"].values())


async def test_rest_answers_send_non_ascii_text_unescaped(start_server: StartServer) -> None:
    server = await start_server()
    emoji = "\N{GRINNING FACE}" * 10_000  # 40,000 bytes of UTF-8; escaped it would be 120,000
    headers = {"Authorization": f"Bearer {server.token('u1')}"}
    async with server.http.post(
        server.url + "/api/jobs", json={"type": "t", "input": {"text": emoji}}, headers=headers
    ) as response:
        assert response.status == 201
        raw = await response.read()
    assert emoji.encode() in raw
    assert len(raw) < 41_000 + 2_000
