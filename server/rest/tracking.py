"""Counting HTTP requests in flight, so that shutdown can wait for client connections to end.

Engine.IO's websockets and long polls are requests too: they end once the clients went away.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from server.keys import HTTP_IN_FLIGHT

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def tracking_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    with request.app[HTTP_IN_FLIGHT].track():
        return await handler(request)


__all__ = ["tracking_middleware"]
