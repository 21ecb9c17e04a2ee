"""Every HTTP request: its request id, the log context, the access line, and the count of
requests in flight (so that shutdown can wait for client connections to end).

``X-Request-ID`` is the caller's when it is 1..128 of ``[A-Za-z0-9_.:-]``, otherwise a new
one; it is on every answer (set when the answer is prepared, so streamed answers and
websocket upgrades get it too) and in every log line written while the request is served.
Engine.IO's websockets and long polls are requests too: they end once the clients went away.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from jobspine_shared.logcontext import log_context, new_request_id
from server.keys import HTTP_IN_FLIGHT, SETTINGS
from server.logs import ACCESS_LOGGER

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_KEY = web.RequestKey("request_id", str)
_WELL_FORMED = re.compile(r"[A-Za-z0-9_.:\-]{1,128}")

access_log = logging.getLogger(ACCESS_LOGGER)


def request_id_of(value: str | None) -> str:
    """The caller's id when well-formed, else a new one."""
    if value is not None and _WELL_FORMED.fullmatch(value):
        return value
    return new_request_id()


def request_id(request: web.Request) -> str:
    """The id of this request (set by :func:`tracking_middleware`)."""
    return request.get(REQUEST_ID_KEY) or new_request_id()


@web.middleware
async def tracking_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    rid = request_id_of(request.headers.get(REQUEST_ID_HEADER))
    request[REQUEST_ID_KEY] = rid
    started = time.monotonic()
    status = 500
    with log_context(request_id=rid), request.app[HTTP_IN_FLIGHT].track():
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            exc.headers[REQUEST_ID_HEADER] = rid
            raise
        finally:
            if request.app[SETTINGS].access_log:
                # The path only: query strings may carry tokens (Engine.IO polling).
                access_log.info(
                    "%s %s %d %.1fms",
                    request.method,
                    request.path,
                    status,
                    (time.monotonic() - started) * 1000,
                )


async def add_request_id_header(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: the request's id on every answer."""
    response.headers[REQUEST_ID_HEADER] = request_id(request)


__all__ = [
    "REQUEST_ID_HEADER",
    "add_request_id_header",
    "new_request_id",
    "request_id",
    "request_id_of",
    "tracking_middleware",
]
