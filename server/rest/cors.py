"""CORS for the HTTP API, matching Socket.IO's ``cors_allowed_origins="*"``.

Tokens travel in the ``Authorization`` header, never in cookies, so any origin may call; a
browser-based client can then use REST as it uses Socket.IO. Engine.IO answers CORS for its
own endpoint.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SOCKETIO_PATH = "/socket.io/"

PREFLIGHT_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type",
    "Access-Control-Max-Age": "600",
}


@web.middleware
async def cors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith(SOCKETIO_PATH):
        return await handler(request)
    if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
        return web.Response(status=204, headers=PREFLIGHT_HEADERS)
    response = await handler(request)
    if not response.prepared:
        response.headers.setdefault("Access-Control-Allow-Origin", "*")
    return response


__all__ = ["cors_middleware"]
