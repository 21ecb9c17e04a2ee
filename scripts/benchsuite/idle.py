"""e. Idle connections: the server's resident memory per connected, idle client.

A fresh server of each kind (jobspine on the memory store, and raw python-socketio) gets
``idle_warm`` clients first (so that lazily built state is paid for), its RSS is read from
``/proc/<pid>/status``, then clients are added up to each count in ``idle_counts``: the
growth over the baseline, divided by the clients added, is the cost of one connection. Each
client completes the Engine.IO and Socket.IO handshakes over a websocket (jobspine's with a
token, so it is authenticated and in its user room), then only answers pings.
"""

from __future__ import annotations

import contextlib
import gc

from scripts.benchsuite.common import Result, Series, at_most, gather_limited, user_auth
from scripts.benchsuite.context import Context
from scripts.benchsuite.servers import Server, jobspine, raw
from scripts.benchsuite.wire import WireClient

GOAL_KB = 30.0
CONNECT_CONCURRENCY = 100


async def _growth(ctx: Context, server: Server, auth: bool) -> list[float]:
    """Bytes per client at each of the sizes' counts of clients."""
    counts, warm = ctx.sizes.idle_counts, ctx.sizes.idle_warm
    clients: list[WireClient] = []

    async def connect(_: int) -> WireClient:
        return await WireClient.connect(ctx.http, server.url, "/", user_auth() if auth else None)

    try:
        clients += await gather_limited(warm, connect, concurrency=CONNECT_CONCURRENCY)
        base = server.rss_bytes()
        per_client = []
        for count in counts:
            more = count - len(clients)
            clients += await gather_limited(more, connect, concurrency=CONNECT_CONCURRENCY)
            per_client.append((server.rss_bytes() - base) / (count - warm))
        return per_client
    finally:
        for client in clients:
            with contextlib.suppress(Exception):
                await client.close()
        gc.collect()


async def run(ctx: Context) -> list[Result]:
    counts = ctx.sizes.idle_counts
    async with raw("raw-idle") as server:
        raw_bytes = await _growth(ctx, server, auth=False)
    async with jobspine("memory-idle") as server:
        ours = await _growth(ctx, server, auth=True)
    results = []
    for count, value, baseline in zip(counts, ours, raw_bytes, strict=True):
        params = {"clients": count, "warm": ctx.sizes.idle_warm}
        per_client = Series("e", f"idle_kb_per_client_{count}", "KB/client", params)
        goal = at_most(GOAL_KB, "KB")
        results.append(per_client.result("memory", value / 1024, baseline / 1024, goal))
    return results
