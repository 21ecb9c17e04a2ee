"""The REST error envelope ``{"error": {code, message, details?}}`` for every failure.

One middleware turns domain errors, aiohttp's own HTTP errors (unknown route, wrong method,
oversize body) and unexpected exceptions (logged with their traceback, never sent) into the
envelope through the one error boundary (:func:`server.error_view.error_view`: a refusal by
a limit also gets ``Retry-After``), and counts requests by route and status.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from server.error_view import error_view, is_expected
from server.errors import (
    BadRequest,
    JobspineError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
)
from server.keys import METRICS
from server.rest.cors import SOCKETIO_PATH
from server.rest.json_body import json_response

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(exc: BaseException, headers: dict[str, str] | None = None) -> web.Response:
    view = error_view(exc)
    sent = {**view.headers, **(headers or {})}
    return json_response({"error": view.to_wire()}, status=view.http_status, headers=sent)


def _from_http(exc: web.HTTPException) -> JobspineError:
    if isinstance(exc, web.HTTPNotFound):
        return NotFound("no such route")
    if isinstance(exc, web.HTTPMethodNotAllowed):
        return MethodNotAllowed(
            f"{exc.method} is not allowed here; allowed: " + ", ".join(sorted(exc.allowed_methods))
        )
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return PayloadTooLarge("the request body is larger than allowed")
    if isinstance(exc, web.HTTPUnauthorized):
        return Unauthorized()
    if exc.status < 500:
        return BadRequest(exc.reason)
    return JobspineError(exc.reason)


def _route_name(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
def error_middleware(request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
    """Every error as the contract's envelope. Engine.IO's requests (websockets, long polls)
    answer in their own protocol: they go straight to it, so that no frame of this
    middleware is held for as long as a websocket lives (memory per idle connection)."""
    if request.path.startswith(SOCKETIO_PATH):
        return handler(request)
    return _with_error_envelope(request, handler)


async def _with_error_envelope(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        response = error_response(_from_http(exc), headers)
    except Exception as exc:
        if not is_expected(exc):
            log.exception("%s %s failed", request.method, request.path)
        response = error_response(exc)
    request.app[METRICS].http_request(request.method, _route_name(request), response.status)
    return response


__all__ = ["error_middleware", "error_response"]
