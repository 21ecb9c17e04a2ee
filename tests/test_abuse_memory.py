"""Refusals cost the server no memory: against a real ``python -m server`` process, 100
refused connections over ``MAX_SOCKETS_PER_USER``, 100 rate-limited calls and 100 oversize
inputs leave its RSS under a bound (a bound only, never a timing)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
import socketio

from tests.support.memory_use import RSS_BOUND_KIB, rss_kib
from tests.support.processes import WebProcess, token, web_process
from tests.support.server import TIMEOUT_S

ATTEMPTS = 100


@pytest.fixture
async def web() -> AsyncIterator[WebProcess]:
    env = {"MAX_SOCKETS_PER_USER": "2", "USER_CALLS_PER_S": "1", "MAX_INPUT_BYTES": "1000"}
    async with web_process("web-limits", **env) as process:
        yield process


async def _client(url: str, sub: str) -> socketio.AsyncClient:
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(url, auth={"token": token(sub)}, wait_timeout=TIMEOUT_S)
    return client


async def test_refusals_leave_memory_bounded(web: WebProcess) -> None:
    held = [await _client(web.url, "hog") for _ in range(2)]
    refused = 0
    for _ in range(ATTEMPTS):
        client = socketio.AsyncClient(reconnection=False)
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect(web.url, auth={"token": token("hog")}, wait_timeout=TIMEOUT_S)
        refused += 1
        await client.disconnect()
    codes: dict[str, int] = {}
    for _ in range(ATTEMPTS):
        ack = await held[0].call("job:create", {"type": "t", "input": {}}, timeout=TIMEOUT_S)
        code = "ok" if ack["ok"] else ack["error"]["code"]
        codes[code] = codes.get(code, 0) + 1
    assert codes.get("rate_limited", 0) >= ATTEMPTS - 3, codes
    async with aiohttp.ClientSession() as http:
        for attempt in range(ATTEMPTS):  # a user each: none is over its rate
            headers = {"Authorization": f"Bearer {token(f'big-{attempt}')}"}
            body = {"type": "t", "input": {"x": "y" * 50_000}}
            async with http.post(f"{web.url}/api/jobs", json=body, headers=headers) as response:
                assert response.status == 413
    assert refused == ATTEMPTS
    rss = rss_kib(web.proc.process.pid)
    print(f"server RSS after the attempts: {rss // 1024} MiB")  # shown with -s
    assert rss < RSS_BOUND_KIB
    for client in held:
        await client.disconnect()
