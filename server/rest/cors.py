"""CORS for the HTTP API, with the same ``CORS_ORIGINS`` as Socket.IO.

Tokens travel in the ``Authorization`` header, never in cookies, so credentials are never
allowed (no ``Access-Control-Allow-Credentials``). With ``*`` (the default) any origin may
call; with a list, an allowed ``Origin`` is echoed (with ``Vary: Origin``) and any other gets
no CORS headers, so the browser refuses to hand it the answer. Engine.IO answers CORS for its
own endpoint.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from server.keys import SETTINGS

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SOCKETIO_PATH = "/socket.io/"

PREFLIGHT_HEADERS = {
    "Access-Control-Allow-Methods": "GET, POST, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, Idempotency-Key, X-Request-ID",
    "Access-Control-Max-Age": "600",
}


def allowed_origin(request: web.Request) -> str | None:
    """The ``Access-Control-Allow-Origin`` value for this request; ``None``: no CORS."""
    origins = request.app[SETTINGS].cors_origins
    if "*" in origins:
        return "*"
    origin = request.headers.get("Origin")
    return origin if origin is not None and origin in origins else None


def _cors_headers(request: web.Request) -> dict[str, str]:
    origin = allowed_origin(request)
    if origin is None:
        return {}
    headers = {"Access-Control-Allow-Origin": origin}
    if origin != "*":
        headers["Vary"] = "Origin"
    return headers


@web.middleware
def cors_middleware(request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
    if request.path.startswith(SOCKETIO_PATH):
        return handler(request)  # Engine.IO's own CORS; no frame of ours for a websocket's life
    return _with_cors(request, handler)


async def _with_cors(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
        headers = _cors_headers(request)
        if headers:
            headers.update(PREFLIGHT_HEADERS)
        return web.Response(status=204, headers=headers)
    response = await handler(request)
    if not response.prepared:
        for name, value in _cors_headers(request).items():
            response.headers.setdefault(name, value)
    return response


__all__ = ["allowed_origin", "cors_middleware"]
