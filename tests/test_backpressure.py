"""A client that stops reading is dropped once its send queue is full; the others are not.

The laggard is a raw websocket client with a small receive window (tests/support/laggard.py):
once it stops reading, the server's writes to it stall and its Engine.IO queue grows. The
server (``MAX_CLIENT_QUEUE`` set low) must then drop it, count it, free its queue, and go on
delivering every event to a client that reads.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from server.keys import HTTP_IN_FLIGHT, METRICS, SIO
from server.realtime.backpressure import BoundedSendQueue
from server.realtime.rooms import USER_NAMESPACE
from tests.support.jobs import wait_until
from tests.support.laggard import Laggard
from tests.support.server import TIMEOUT_S, StartServer, connect_user

QUEUE_BOUND = 16
#: Each job:created event carries the job's input: large events fill the laggard's TCP
#: buffers (the server's send buffer grows to a few MiB) after a few dozen jobs.
INPUT_BYTES = 256 * 1024
#: Far more than needed to fill those buffers and the queue; the loop stops at the drop.
MAX_JOBS = 200


def test_the_bounded_queue_refuses_past_its_bound_and_tells_once() -> None:
    overflows: list[BoundedSendQueue] = []
    queue = BoundedSendQueue(3, overflows.append)
    for packet in range(5):
        queue.put_nowait(packet)
    assert queue.qsize() == 3
    assert overflows == [queue]
    queue.put_nowait(None)  # Engine.IO's end marker always gets in
    assert queue.qsize() == 4
    assert queue.discard() == 4
    assert queue.qsize() == 0
    queue.put_nowait("after")  # still overflowed: the client is being dropped
    assert queue.qsize() == 0
    assert overflows == [queue]


async def _big_job(user: Any, n: int) -> str:
    ack = await user.ok("job:create", {"type": "big", "input": {"n": n, "blob": "x" * INPUT_BYTES}})
    job_id: str = ack["job"]["id"]
    return job_id


async def test_a_client_that_stops_reading_is_dropped_and_others_get_everything(
    start_server: StartServer,
) -> None:
    server = await start_server(
        env={"MAX_CLIENT_QUEUE": str(QUEUE_BOUND), "MAX_INPUT_BYTES": str(2 * INPUT_BYTES)}
    )
    metrics, sockets = server.app[METRICS], server.app[SIO]
    reader = await connect_user(server, "u1")
    laggard = await asyncio.wait_for(
        Laggard.connect(server.url, USER_NAMESPACE, {"token": server.token("u1")}), TIMEOUT_S
    )
    try:
        assert sockets.connected_count(USER_NAMESPACE) == 2
        # From here on the laggard reads nothing; every job:created goes to both (user room).
        created: list[str] = []
        while metrics.slow_clients_dropped == 0 and len(created) < MAX_JOBS:
            created.append(await _big_job(reader, len(created)))
        assert metrics.slow_clients_dropped == 1, f"not dropped after {len(created)} events"

        # The reader got every event, in order, and keeps getting them.
        created.append(await _big_job(reader, len(created)))
        await reader.events.wait_for(
            lambda events: (
                [data["job_id"] for name, data in events if name == "job:created"] == created
            ),
            within=TIMEOUT_S * 2,
        )
        # Its websocket request ended on the server while it still reads nothing: the TCP
        # connection was aborted, so no writer stays blocked on its full socket buffer. Only
        # the reader's websocket is left.
        in_flight = server.app[HTTP_IN_FLIGHT]
        await wait_until(lambda: _true(len(in_flight) == 1), within=TIMEOUT_S)
        # The laggard sees its connection gone (it would reconnect and replay).
        assert await asyncio.wait_for(laggard.closed_by_server(), TIMEOUT_S)
        await wait_until(lambda: _true(sockets.connected_count(USER_NAMESPACE) == 1))
        status, text = await server.rest("GET", "/metrics")
        assert status == 200
        assert "jobspine_slow_clients_dropped_total 1" in str(text)
    finally:
        await laggard.close()


async def test_clients_that_keep_reading_are_never_dropped(start_server: StartServer) -> None:
    """Many small events quickly: a reading client's queue may fill up for a moment, but a
    bound of a few thousand leaves it alone (the default is 5000)."""
    server = await start_server(env={"MAX_CLIENT_QUEUE": "2000"})
    reader = await connect_user(server, "u1")
    laggard = await asyncio.wait_for(
        Laggard.connect(server.url, USER_NAMESPACE, {"token": server.token("u1")}), TIMEOUT_S
    )
    try:
        # A raw client that does read: it must keep all its packets too.
        results = await asyncio.gather(
            *(reader.ok("job:create", {"type": "small", "input": {"n": n}}) for n in range(300))
        )
        seen = 0
        while seen < len(results):
            packet = await asyncio.wait_for(laggard.read_packet(), TIMEOUT_S)
            seen += packet.startswith('42["job:created"')
        await reader.events.wait_for(
            lambda events: sum(name == "job:created" for name, _ in events) == len(results)
        )
        assert server.app[METRICS].slow_clients_dropped == 0
    finally:
        await laggard.close()


async def _true(value: bool) -> bool:
    return value


pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")
