"""Engine.IO's pings come from one schedule, not a sleeping task per socket: an idle socket
is pinged every ``ping_interval`` and answers; a closed one is not pinged again."""

from __future__ import annotations

import asyncio

import aiohttp

from server.keys import SIO
from server.realtime.sockets import SocketServer
from tests.support.jobs import wait_until
from tests.support.server import LiveServer, running_server

PING_INTERVAL_S = 0.05


def _ping_tasks() -> list[asyncio.Task[object]]:
    """Tasks running Engine.IO's own per-socket ping wait."""
    return [t for t in asyncio.all_tasks() if "_send_ping" in repr(t.get_coro())]


async def _true(value: bool) -> bool:
    return value


async def _pinged_websocket(
    server: LiveServer,
) -> tuple[SocketServer, aiohttp.ClientWebSocketResponse]:
    """A bare Engine.IO websocket on a server that pings every :data:`PING_INTERVAL_S`,
    past its open packet."""
    sockets = server.app[SIO]
    sockets.server.eio.ping_interval = PING_INTERVAL_S
    ws = await server.http.ws_connect(
        server.url.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket"
    )
    assert (await ws.receive_str()).startswith("0")
    return sockets, ws


async def test_an_idle_socket_is_pinged_every_interval_without_a_task_of_its_own() -> None:
    async with running_server() as server:
        sockets, ws = await _pinged_websocket(server)
        for _ in range(3):  # each pong schedules the next ping
            assert await asyncio.wait_for(ws.receive_str(), 5.0) == "2"
            assert _ping_tasks() == []
            await wait_until(lambda: _true(len(sockets.pings) == 0))  # taken, not yet answered
            await ws.send_str("3")
            await wait_until(lambda: _true(len(sockets.pings) == 1))
        await ws.close()
        # Its entry comes due and goes without a ping.
        await wait_until(lambda: _true(len(sockets.pings) == 0))


async def test_after_shutdown_a_pong_schedules_nothing() -> None:
    async with running_server() as server:
        sockets, ws = await _pinged_websocket(server)
        assert await asyncio.wait_for(ws.receive_str(), 5.0) == "2"
        (socket,) = sockets.server.eio.sockets.values()
        sockets.pings.close()
        await ws.send_str("3")
        await wait_until(lambda: _true(socket.last_ping is None))  # the pong was handled
        assert len(sockets.pings) == 0
        await ws.close()
