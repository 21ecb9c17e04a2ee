"""``scripts/bench micro --event emit``: one job event through ``SocketServer.emit`` to the
sockets watching it, in process.

The event goes where the publisher sends every job event (``job:<id>`` and ``user:<owner>``
in one emit) and reaches ``--watchers`` sockets of the user room, as the peer workload's one
client does: encoding, the client manager, Engine.IO's ``send`` and each socket's bounded
queue run as served; the sockets have no network (:mod:`tests.support.local_sockets`), and
their queues are emptied after every emit. Under ``valgrind --tool=callgrind`` the
difference of two ``--calls`` counts is the instructions per emit, whatever the load.
"""

from __future__ import annotations

import time

from server.realtime.rooms import USER_NAMESPACE, job_room, user_room
from server.realtime.sockets import SocketServer
from tests.support.local_sockets import LocalSockets

#: The wire form of a progress event (``event_to_wire``), as the peer workload's reports.
PROGRESS = {
    "job_id": "0193a6f0-7c1e-7d4a-9b7e-5f0c2d1e8a40",
    "seq": 7,
    "type": "job:progress",
    "at": "2026-12-07T22:00:00.000000+00:00",
    "data": {"progress": 35.0, "step": {"sent_at": 1796680800.123456}},
}


async def per_emit_us(calls: int, runs: int, watchers: int) -> float:
    """The best run's time per emit, in µs."""
    sockets = SocketServer(max_message_bytes=1 << 20, max_client_queue=1000)
    local = LocalSockets(sockets)
    job, user = job_room(str(PROGRESS["job_id"])), user_room("bench-user")
    clients = [await local.connect(USER_NAMESPACE, (user,)) for _ in range(watchers)]
    best = float("inf")
    try:
        for _ in range(runs):
            started = time.perf_counter()
            for _ in range(calls):
                await sockets.emit("job:progress", PROGRESS, [job, user], USER_NAMESPACE)
                for client in clients:
                    client.take()
            best = min(best, time.perf_counter() - started)
    finally:
        await sockets.shutdown()
    return best / calls * 1e6


__all__ = ["PROGRESS", "per_emit_us"]
