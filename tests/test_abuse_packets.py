"""Packet-level abuse over a raw Engine.IO websocket: binary Socket.IO packets are refused
before anything is buffered (the connection is closed), and the server's memory stays bounded.

The server is a real ``python -m server`` process, so its RSS (``/proc/<pid>/status``) is its
own; it is used only as a bound, never as a timing.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.support.memory_use import RSS_BOUND_KIB, rss_kib
from tests.support.processes import WebProcess, token, web_process
from tests.support.server import TIMEOUT_S

#: What one attempt tries to make the server hold: a header announcing this many attachments,
#: then a few frames of :data:`FRAME_BYTES` each.
ANNOUNCED_ATTACHMENTS = 999_999
FRAME_BYTES = 1 << 20
FRAMES_PER_ATTEMPT = 3
ATTEMPTS = 100


@pytest.fixture
async def web() -> AsyncIterator[WebProcess]:
    async with web_process("web-abuse") as process:
        yield process


async def _open_socket(
    http: aiohttp.ClientSession, url: str, sub: str
) -> aiohttp.ClientWebSocketResponse:
    """A raw websocket connected to namespace ``/`` as ``sub`` (Engine.IO 4, Socket.IO 5)."""
    ws = await http.ws_connect(f"{url}/socket.io/?EIO=4&transport=websocket")
    opened = await ws.receive_str(timeout=TIMEOUT_S)
    assert opened.startswith("0{"), opened
    await ws.send_str("40" + json.dumps({"token": token(sub)}))
    connected = await ws.receive_str(timeout=TIMEOUT_S)
    assert connected.startswith("40{"), connected
    return ws


async def _closed_by_server(ws: aiohttp.ClientWebSocketResponse) -> bool:
    """Whether the server closes the websocket (before :data:`TIMEOUT_S`)."""
    while True:
        message = await ws.receive(timeout=TIMEOUT_S)
        if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
            return True
        if message.type is aiohttp.WSMsgType.ERROR:
            return True
        # Engine.IO's "6" noop / "2" ping while closing; anything else is unexpected.
        assert message.type is aiohttp.WSMsgType.TEXT, message


async def _attempt(http: aiohttp.ClientSession, url: str, header: str) -> None:
    ws = await _open_socket(http, url, "binary-attacker")
    frame = b"\x04" + b"x" * FRAME_BYTES
    try:
        await ws.send_str(header)
        for _ in range(FRAMES_PER_ATTEMPT):
            if ws.closed:
                break
            try:
                await ws.send_bytes(frame)
            except ConnectionError:
                break
        assert await _closed_by_server(ws)
    finally:
        await ws.close()


async def test_a_binary_event_header_closes_the_connection(web: WebProcess) -> None:
    header = f'45{ANNOUNCED_ATTACHMENTS}-["job:create",{{"_placeholder":true,"num":0}}]'
    async with aiohttp.ClientSession() as http:
        await _attempt(http, web.url, header)


async def test_a_binary_ack_and_a_stray_binary_frame_close_the_connection(
    web: WebProcess,
) -> None:
    async with aiohttp.ClientSession() as http:
        await _attempt(http, web.url, f'46{ANNOUNCED_ATTACHMENTS}-0[{{"_placeholder":true}}]')
        ws = await _open_socket(http, web.url, "stray-frame")
        await ws.send_bytes(b"\x04stray attachment")
        assert await _closed_by_server(ws)
        await ws.close()


async def test_memory_stays_bounded_after_many_binary_attempts(web: WebProcess) -> None:
    header = f'45{ANNOUNCED_ATTACHMENTS}-["job:create",{{"_placeholder":true,"num":0}}]'
    async with aiohttp.ClientSession() as http:
        for _ in range(ATTEMPTS):
            await _attempt(http, web.url, header)
        pid = web.proc.process.pid
        rss = rss_kib(pid)
        print(f"server RSS after the attempts: {rss // 1024} MiB")  # shown with -s
        assert rss < RSS_BOUND_KIB
        # Still serving: a fresh socket's call is answered.
        ws = await _open_socket(http, web.url, "after-attack")
        await ws.send_str('421["job:create",{"type":"t","input":{}}]')
        answer = await ws.receive_str(timeout=TIMEOUT_S)
        while not answer.startswith("431["):  # the job:created event may come first
            answer = await ws.receive_str(timeout=TIMEOUT_S)
        assert '"ok":true' in answer.replace(" ", ""), answer
        await ws.close()
