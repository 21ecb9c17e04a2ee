"""Installing the limits in the app: call buckets and socket counts (in Redis with
``REDIS_URL``), the socket guard (calls in flight, session timers), and their lifecycle."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from server.auth import TokenVerifier
from server.config import Settings
from server.limits.calls import CallLimits, SocketQuota
from server.limits.rest import CALL_LIMITS
from server.limits.socket_counts import RedisSocketCounts
from server.realtime.sessions import SocketGuard
from server.realtime.sockets import SocketServer
from server.tasks import start_task, stop_task

SOCKET_GUARD = web.AppKey("socket_guard", SocketGuard)


def _redis_client(settings: Settings) -> Any:
    if settings.redis_url is None:
        return None
    import redis.asyncio

    return redis.asyncio.Redis.from_url(
        settings.redis_url, socket_connect_timeout=1.0, socket_timeout=1.0
    )


def install_limits(
    app: web.Application, settings: Settings, sockets: SocketServer, verifier: TokenVerifier
) -> SocketGuard:
    """Before the namespaces are installed: every socket and REST call is then guarded."""
    redis = _redis_client(settings)
    limits = CallLimits.build(settings.limits, redis=redis, prefix=settings.redis_channel)
    shared = None
    if redis is not None:
        shared = RedisSocketCounts(redis, prefix=settings.redis_channel)
    guard = SocketGuard(
        sockets, verifier=verifier, limits=limits, quota=SocketQuota(settings.limits, shared)
    )
    sockets.guard = guard
    app[CALL_LIMITS] = limits
    app[SOCKET_GUARD] = guard

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        counts = None if shared is None else start_task(shared.run(), name="socket-counts")
        try:
            yield
        finally:
            if counts is not None:
                await stop_task(counts)
            await guard.close()
            if redis is not None:
                await redis.aclose()

    app.cleanup_ctx.append(lifecycle)
    return guard


__all__ = ["SOCKET_GUARD", "install_limits"]
