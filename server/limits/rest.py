"""REST requests count against their user's ``USER_CALLS_PER_S`` bucket, the same one as the
user's ``/`` events. A request without a valid token is not counted here: its view refuses it
(``unauthorized``) as before."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from server.errors import JobspineError
from server.keys import VERIFIER
from server.limits.calls import CallLimits

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CALL_LIMITS = web.AppKey("call_limits", CallLimits)
#: Paths outside the user API: probes, metrics and Socket.IO's own transport.
UNCOUNTED_PREFIXES = ("/socket.io/", "/healthz", "/readyz", "/metrics", "/api/openapi")


@web.middleware
def rate_limit_middleware(request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
    if request.path.startswith(UNCOUNTED_PREFIXES):
        return handler(request)  # no frame of ours for as long as a websocket lives
    return _rate_limited(request, handler)


async def _rate_limited(request: web.Request, handler: Handler) -> web.StreamResponse:
    limits = request.app.get(CALL_LIMITS)
    if limits is not None:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            try:
                identity = request.app[VERIFIER].verify(token.strip())
            except JobspineError:
                identity = None  # the view says why
            if identity is not None:
                await limits.admit_user(identity.actor)
    return await handler(request)


__all__ = ["CALL_LIMITS", "rate_limit_middleware"]
