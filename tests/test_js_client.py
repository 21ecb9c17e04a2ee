"""The official JS ``socket.io-client`` against a live server (``tests/js/client.mjs``).

Needs ``node`` and ``npm install --prefix tests/js`` (``scripts/test`` runs it). Without them
the tests skip, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.node import require_node
from tests.support.server import LiveServer, StartServer, connect_worker

JS_DIR = Path(__file__).resolve().parent / "js"
SCRIPT = JS_DIR / "client.mjs"
LINE_TIMEOUT_S = 30.0


def _node() -> str:
    return require_node(JS_DIR, "socket.io-client")


class NodeClient:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def line(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        raw = await asyncio.wait_for(self.process.stdout.readline(), LINE_TIMEOUT_S)
        if not raw:
            stderr = b""
            if self.process.stderr is not None:
                stderr = await self.process.stderr.read()
            pytest.fail(f"the node client ended without output: {stderr.decode()}")
        parsed: dict[str, Any] = json.loads(raw)
        return parsed

    async def exit_code(self) -> int:
        return await asyncio.wait_for(self.process.wait(), LINE_TIMEOUT_S)


@contextlib.asynccontextmanager
async def node_client(*args: str, stdin: bytes = b"") -> AsyncIterator[NodeClient]:
    process = await asyncio.create_subprocess_exec(
        _node(),
        str(SCRIPT),
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=JS_DIR,
    )
    assert process.stdin is not None
    process.stdin.write(stdin)
    await process.stdin.drain()
    process.stdin.close()
    try:
        yield NodeClient(process)
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


@pytest.mark.parametrize("transports", ["polling,websocket", "websocket", "polling"])
async def test_a_js_client_subscribes_and_receives_progress(
    start_server: StartServer, transports: str
) -> None:
    server: LiveServer = await start_server()
    status, job = await server.rest(
        "POST", "/api/jobs", token=server.token("u1"), json={"type": "research"}
    )
    assert status == 201
    async with node_client("watch", server.url, server.token("u1"), job["id"], transports) as js:
        ack = (await js.line())["ack"]
        assert ack["ok"] is True
        assert ack["recovered"] is False
        assert ack["events"] == []
        assert ack["job"]["id"] == job["id"]

        worker = await connect_worker(server)
        lease = (await worker.ok("claim", {}))["lease"]
        await worker.ok(
            "progress",
            {"job_id": job["id"], "lease": lease, "progress": 42.5, "step": "step 1/2"},
        )
        received = await js.line()
        event = received["event"]
        assert event["type"] == "job:progress"
        assert event["job_id"] == job["id"]
        assert event["seq"] == 3
        assert event["epoch"] == job["epoch"]
        assert event["data"] == {"progress": 42.5, "step": "step 1/2"}
        assert received["transport"] == transports.split(",")[-1]
        assert await js.exit_code() == 0


@pytest.mark.parametrize(
    ("namespace", "token", "expected"),
    [
        ("/", "garbage", {"code": "unauthorized", "message": "the token is malformed"}),
        ("/", "-", {"code": "unauthorized", "message": "a token is required"}),
        ("/", "expired", {"code": "unauthorized", "message": "the token has expired"}),
        (
            "/workers",
            "user",
            {"code": "forbidden", "message": "this needs a token of role worker, not user"},
        ),
        (
            "/admin",
            "user",
            {"code": "not_found", "message": "no such namespace: /admin; use / or /workers"},
        ),
    ],
)
async def test_a_refused_js_client_gets_code_and_message_as_err_data(
    start_server: StartServer, namespace: str, token: str, expected: dict[str, str]
) -> None:
    server = await start_server()
    # Expired beyond JWT_LEEWAY_S (30 s).
    tokens = {"expired": server.token("u1", ttl=-60), "user": server.token("u1")}
    async with node_client("refused", server.url + namespace, tokens.get(token, token)) as js:
        error = (await js.line())["connect_error"]
        assert error["data"] == expected
        assert error["message"] == expected["message"]
        assert await js.exit_code() == 0


async def _js_calls(url: str, token: str, calls: list[list[Any]]) -> dict[str, Any]:
    async with node_client("calls", url, token, stdin=json.dumps(calls).encode()) as js:
        result = await js.line()
        assert await js.exit_code() == 0, result
        return result


async def test_js_calls_get_flat_acks_and_errors(start_server: StartServer) -> None:
    server = await start_server()
    result = await _js_calls(
        server.url,
        server.token("u1"),
        [
            ["job:create", {"type": "research", "input": {"q": "é"}}],
            ["job:subscribe", {"job_id": "$job_id", "after_seq": 0}],
            ["job:create", "not an object"],
            ["job:create"],
            ["job:launch", {}],
            ["job:pause", {"job_id": "not-an-id"}],
        ],
    )
    created, subscribed, not_object, no_payload, unknown, bad_id = result["acks"]
    assert created["ok"] is True
    assert created["job"]["input"] == {"q": "é"}
    assert subscribed["recovered"] is True
    assert [e["type"] for e in subscribed["events"]] == ["job:created"]
    assert not_object["error"]["code"] == "validation_error"
    assert no_payload["error"]["code"] == "validation_error"
    assert unknown == {
        "ok": False,
        "error": {
            "code": "bad_request",
            "message": "unknown event 'job:launch' on namespace /",
            "details": {"event": "job:launch"},
        },
    }
    assert bad_id["error"]["code"] == "validation_error"
    assert result["connected"] is True


async def test_a_js_worker_is_refused_an_oversize_checkpoint_by_ack(
    start_server: StartServer,
) -> None:
    """At the default limit, with the JS client's raw UTF-8 encoding."""
    server = await start_server()
    limit = server.settings.max_checkpoint_bytes
    status, job = await server.rest(
        "POST", "/api/jobs", token=server.token("u1"), json={"type": "research"}
    )
    assert status == 201
    fenced = {"job_id": "$job_id", "lease": "$lease"}
    result = await _js_calls(
        server.url + "/workers",
        server.token("worker-js", "worker"),
        [
            ["claim", {}],
            ["checkpoint", {**fenced, "data": {"blob": "é" * (limit // 2)}}],
            ["checkpoint", {**fenced, "data": {"blob": "é" * (limit // 2 - 8)}}],
            ["progress", {**fenced, "progress": 50}],
        ],
    )
    claim, too_large, fits, progress = result["acks"]
    assert claim["job"]["id"] == job["id"]
    assert too_large["ok"] is False
    assert too_large["error"]["code"] == "payload_too_large"
    assert fits["ok"] is True
    assert progress == {"ok": True}
    assert result["connected"] is True


def _nested_json(depth: int) -> str:
    """``{"a": {"a": … {}}}`` nested ``depth`` objects deep, written out (``json.dumps``
    would reach Python's recursion limit)."""
    return '{"a":' * (depth - 1) + "{}" + "}" * (depth - 1)


async def test_js_calls_nested_too_deep_get_validation_errors(start_server: StartServer) -> None:
    """Deeper than Python's JSON parser follows (the call used to get no ack at all), and
    deeper than the value limit."""
    server = await start_server()
    calls = (
        f'[["job:create", {{"type": "t", "input": {_nested_json(1200)}}}],'
        f' ["job:create", {{"type": "t", "input": {_nested_json(150)}}}],'
        ' ["job:create", {"type": "t"}]]'
    )
    async with node_client("calls", server.url, server.token("u1"), stdin=calls.encode()) as js:
        result = await js.line()
        assert await js.exit_code() == 0, result
    parse_too_deep, value_too_deep, fine = result["acks"]
    assert parse_too_deep["error"]["code"] == "validation_error"
    assert parse_too_deep["error"]["details"] == {"field": "payload"}
    assert value_too_deep["error"]["code"] == "validation_error"
    assert value_too_deep["error"]["details"] == {"field": "input"}
    assert fine["ok"] is True
    assert result["connected"] is True
    status, page = await server.rest("GET", "/api/jobs", token=server.token("u1"))
    assert status == 200
    assert [job["id"] for job in page["items"]] == [fine["job"]["id"]]
