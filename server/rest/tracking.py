"""Every HTTP request: its request id, the log context, the access line, and the count of
requests in flight (so that shutdown can wait for client connections to end).

``X-Request-ID`` is the caller's when it is 1..128 of ``[A-Za-z0-9_.:-]``, otherwise a new
one; it is on every answer (set when the answer is prepared, so streamed answers and
websocket upgrades get it too) and in every log line written while the request is served.
Engine.IO's websockets and long polls are requests too: they end once the clients went away.

aiohttp serves each request in a task of its own, so the request id is bound in that task's
context and ends with it. For Engine.IO's requests the middleware holds no frame (a websocket
lives for hours, and a suspended coroutine with its context managers took about 2 KB per
idle connection: docs/performance.md, "Memory per idle connection"): a :class:`RequestTrack`
called when the request's task is done counts it out and writes its access line. Other
requests are short, and their line is written in their own context, after the view.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from jobspine_shared.logcontext import bind, new_request_id
from server.keys import HTTP_IN_FLIGHT, SETTINGS
from server.logs import ACCESS_LOGGER
from server.realtime.dispatch import InFlight
from server.rest.cors import SOCKETIO_PATH

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

REQUEST_ID_HEADER = "X-Request-ID"
_WELL_FORMED = re.compile(r"[A-Za-z0-9_.:\-]{1,128}")
#: The status logged for a request whose task ended before an answer was prepared.
UNANSWERED_STATUS = 500

access_log = logging.getLogger(ACCESS_LOGGER)


def request_id_of(value: str | None) -> str:
    """The caller's id when well-formed, else a new one."""
    if value is not None and _WELL_FORMED.fullmatch(value):
        return value
    return new_request_id()


class RequestTrack:
    """One request from the middleware to the end of its task: its id, the status of its
    answer (set when the answer is prepared), and what its access line says."""

    __slots__ = ("_in_flight", "log_access", "method", "path", "request_id", "started", "status")

    def __init__(
        self, request: web.Request, request_id: str, in_flight: InFlight, log_access: bool
    ) -> None:
        self.request_id = request_id
        self.method = request.method
        # The path only: query strings may carry tokens (Engine.IO polling).
        self.path = request.path
        self.started = time.monotonic()
        self.status = UNANSWERED_STATUS
        self.log_access = log_access
        self._in_flight = in_flight

    def begin(self) -> None:
        self._in_flight.enter()

    def end(self) -> None:
        """The request is over (answered, failed or cancelled): counted out, and its line."""
        self._in_flight.leave()
        if self.log_access:
            access_log.info(
                "%s %s %d %.1fms",
                self.method,
                self.path,
                self.status,
                (time.monotonic() - self.started) * 1000,
            )

    def __call__(self, _task: asyncio.Task[object]) -> None:
        """As the done callback of the request's task."""
        self.end()


REQUEST_TRACK_KEY = web.RequestKey("request_track", RequestTrack)


def request_id(request: web.Request) -> str:
    """The id of this request (set by :func:`tracking_middleware`)."""
    track = request.get(REQUEST_TRACK_KEY)
    return track.request_id if track is not None else new_request_id()


@web.middleware
def tracking_middleware(request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
    rid = request_id_of(request.headers.get(REQUEST_ID_HEADER))
    app = request.app
    track = RequestTrack(request, rid, app[HTTP_IN_FLIGHT], app[SETTINGS].access_log)
    request[REQUEST_TRACK_KEY] = track
    # In the request's own task: the value holds for every line written while it is served.
    bind(request_id=rid)
    task = asyncio.current_task()
    if task is None or not request.path.startswith(SOCKETIO_PATH):
        return _tracked(request, handler, track)
    # A websocket or a long poll: no frame of ours for as long as it lives. The track ends
    # with the request's task, in a copy of this context (its line names the request id);
    # the status is the answer's, taken as it is prepared.
    track.begin()
    task.add_done_callback(track)
    return handler(request)


async def _tracked(
    request: web.Request, handler: Handler, track: RequestTrack
) -> web.StreamResponse:
    """A REST request: its access line is written in its own context, so it also names what
    the view bound (a created job's ``job_id`` and ``correlation_id``)."""
    track.begin()
    try:
        response = await handler(request)
        track.status = response.status
        return response
    except web.HTTPException as exc:
        track.status = exc.status
        raise
    finally:
        track.end()


async def add_request_id_header(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: the request's id on every answer, and its status for the
    access line."""
    track = request.get(REQUEST_TRACK_KEY)
    if track is None:
        response.headers[REQUEST_ID_HEADER] = new_request_id()
        return
    response.headers[REQUEST_ID_HEADER] = track.request_id
    track.status = response.status


__all__ = [
    "REQUEST_ID_HEADER",
    "REQUEST_TRACK_KEY",
    "RequestTrack",
    "add_request_id_header",
    "new_request_id",
    "request_id",
    "request_id_of",
    "tracking_middleware",
]
