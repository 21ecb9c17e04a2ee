"""Issue 13 holes 3 and 7 over real sockets and HTTP: MAX_INPUT_BYTES for inputs and results
(``payload_too_large``, nothing stored), the byte bound of a client's send queue, and CORS
without credentials."""

from __future__ import annotations

from typing import Any

from server.actors import Actor, Role
from server.realtime.backpressure import BoundedSendQueue
from tests.support.server import StartServer, connect_user, connect_worker

SMALL_LIMIT = {"MAX_INPUT_BYTES": "1000"}


async def test_an_oversize_input_is_refused_everywhere(start_server: StartServer) -> None:
    server = await start_server(env=SMALL_LIMIT)
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
    page = await server.repository.list_jobs(Actor(id="big", role=Role.USER), limit=10)
    assert page.items == ()
    await user.ok("job:create", {"type": "t", "input": {"text": "x" * 900}})


async def test_an_oversize_result_is_refused_and_the_job_keeps_running(
    start_server: StartServer,
) -> None:
    server = await start_server(env=SMALL_LIMIT)
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
