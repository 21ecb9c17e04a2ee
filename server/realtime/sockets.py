"""A typed face of ``socketio.AsyncServer``: the one module that touches its untyped API."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import socketio
from aiohttp import web

from server.auth import Identity
from server.errors import NotFound
from server.realtime.backpressure import SendQueueBound
from server.realtime.corking import install_corked_websockets
from server.realtime.local_emit import LocalManager
from server.realtime.packets import GuardedAsyncServer, ServerPacket
from server.realtime.pings import PingSchedule
from server.realtime.reader_wait import install_lean_readers
from server.realtime.writer_wait import install_lean_writers

if TYPE_CHECKING:
    from server.realtime.sessions import SocketGuard

ConnectHandler = Callable[[str, dict[str, Any], object], Awaitable[None]]
"""``(sid, environ, auth)``; raises :class:`socketio.exceptions.ConnectionRefusedError`."""

EventHandler = Callable[[str, str, tuple[object, ...]], Awaitable[object]]
"""``(event, sid, args)``; returns the ack."""

ReservedHandler = Callable[[str], Awaitable[object]]
"""``(sid)`` for a client event that reuses a reserved name (``connect``, ``disconnect``)."""

ConnectionRefused = socketio.exceptions.ConnectionRefusedError

SocketGone = Callable[[str, str], None]
"""``(sid, namespace)`` of a socket that left a namespace (disconnected or dropped)."""

_IDENTITY = "identity"


async def _refuse_unknown_namespace(namespace: str, sid: str, *args: Any) -> None:
    error = NotFound(f"no such namespace: {namespace}; use / or /workers").to_wire()
    raise ConnectionRefused(error["message"], {"code": error["code"], "message": error["message"]})


class SocketServer:
    def __init__(
        self,
        *,
        max_message_bytes: int,
        client_manager: Any = None,
        max_client_queue: int = 0,
        max_client_queue_bytes: int = 0,
        on_client_dropped: Callable[[], None] = lambda: None,
        cors_origins: tuple[str, ...] = ("*",),
    ) -> None:
        """``max_client_queue``: packets queued per client before it is dropped as a client
        that stopped reading (:mod:`server.realtime.backpressure`); 0 leaves it unbounded;
        ``max_client_queue_bytes`` bounds their bytes too. ``cors_origins``: ``CORS_ORIGINS``
        (``*`` for any); credentials are never allowed."""
        # Without one given (Redis), python-socketio's in-process manager, emitting
        # without a task per recipient (:mod:`server.realtime.local_emit`).
        manager = LocalManager() if client_manager is None else client_manager
        self.server: Any = GuardedAsyncServer(
            async_mode="aiohttp",
            cors_allowed_origins="*" if "*" in cors_origins else list(cors_origins),
            # Tokens travel in ``auth``, never in cookies: no origin gets credentials.
            cors_credentials=False,
            serializer=ServerPacket,
            max_http_buffer_size=max_message_bytes,
            # Every namespace reaches a connect handler, so that one without its own is
            # refused with ``{code, message}`` like any refused connection (the library's
            # own refusal carries a bare string, which the JS client turns into no
            # ``err.data`` at all).
            namespaces="*",
            client_manager=manager,
        )
        self.server.on("connect", _refuse_unknown_namespace, namespace="*")
        install_corked_websockets(self.server.eio)
        install_lean_writers()
        install_lean_readers()
        self._shut_down = False
        #: Called for every socket that leaves a namespace (session timers, socket counts).
        self.on_socket_gone: list[SocketGone] = []
        #: Limits and session timers of every socket (set by the app; ``None`` in none).
        self.guard: SocketGuard | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        #: Every socket's next ping (:mod:`server.realtime.pings`).
        self.pings = self._track_background_tasks()
        self.send_queue_bound: SendQueueBound | None = None
        if max_client_queue > 0:
            self.send_queue_bound = SendQueueBound(
                self.server.eio,
                max_packets=max_client_queue,
                max_bytes=max_client_queue_bytes,
                on_drop=on_client_dropped,
            )

    def _track_background_tasks(self) -> PingSchedule:
        """Keep a handle on every task Engine.IO and Socket.IO start (event handlers, pings),
        so that :meth:`shutdown` can end those still pending: none outlives the app. A
        socket's wait for its next ping is no task but an entry of the returned schedule."""
        eio = self.server.eio
        spawn = eio.start_background_task
        # One callback and one context for every task: a bound method made per task, and
        # the context asyncio copies for its callback, would stay with each task until it
        # ends (the callback needs no context).
        forget, quiet = self._tasks.discard, contextvars.Context()

        def start_background_task(target: Any, *args: Any, **kwargs: Any) -> Any:
            if pings.takes(target) and not args and not kwargs:
                pings.schedule(target)
                return None
            task = spawn(target, *args, **kwargs)
            if isinstance(task, asyncio.Task):
                self._tasks.add(task)
                task.add_done_callback(forget, context=quiet)
            return task

        pings = PingSchedule(eio, start_background_task)
        eio.start_background_task = start_background_task
        return pings

    def attach(self, app: web.Application) -> None:
        self.server.attach(app)

    # -- handlers -------------------------------------------------------------------------

    def on_connect(
        self, namespace: str, handler: ConnectHandler, reserved: ReservedHandler
    ) -> None:
        """Register the connect handler of ``namespace``.

        python-socketio also routes a *client* event named ``connect`` or ``disconnect`` to
        these handlers; such calls come from connected sockets and go to ``reserved``.
        """

        async def connect(sid: str, *args: Any) -> object:
            if self.is_connected(sid, namespace):
                return await reserved(sid)
            environ = args[0] if args and isinstance(args[0], dict) else {}
            await handler(sid, environ, args[1] if len(args) > 1 else None)
            return None

        async def disconnect(sid: str, *args: Any) -> object:
            if self.is_connected(sid, namespace):
                return await reserved(sid)
            for gone in self.on_socket_gone:
                gone(sid, namespace)
            return None

        self.server.on("connect", connect, namespace=namespace)
        self.server.on("disconnect", disconnect, namespace=namespace)

    def on_any_event(self, namespace: str, handler: EventHandler) -> None:
        """Every client event of ``namespace`` but the reserved ones goes to ``handler``."""

        async def any_event(event: str, sid: str, *args: Any) -> object:
            return await handler(event, sid, args)

        self.server.on("*", any_event, namespace=namespace)

    # -- sessions and rooms -----------------------------------------------------------------

    def is_connected(self, sid: str, namespace: str) -> bool:
        return bool(self.server.manager.is_connected(sid, namespace))

    async def save_identity(self, sid: str, namespace: str, identity: Identity) -> None:
        await self.server.save_session(sid, {_IDENTITY: identity}, namespace=namespace)

    async def identity(self, sid: str, namespace: str) -> Identity | None:
        try:
            session = await self.server.get_session(sid, namespace=namespace)
        except KeyError:  # the socket is already gone
            return None
        found = session.get(_IDENTITY) if isinstance(session, dict) else None
        return found if isinstance(found, Identity) else None

    async def enter_room(self, sid: str, room: str, namespace: str) -> None:
        """Put ``sid`` in ``room``; returns once events for the room published by other
        instances reach this one (with Redis: its room channel is subscribed, or a bounded
        wait passed), so that what the caller reads next cannot miss one."""
        await self.server.enter_room(sid, room, namespace=namespace)
        wait_routed = getattr(self.server.manager, "wait_routed", None)
        if wait_routed is not None:
            await wait_routed(namespace, room)

    async def leave_room(self, sid: str, room: str, namespace: str) -> None:
        await self.server.leave_room(sid, room, namespace=namespace)

    def in_room(self, sid: str, room: str, namespace: str) -> bool:
        return room in self.server.rooms(sid, namespace=namespace)

    def connected_count(self, namespace: str) -> int:
        """Sockets of this instance that completed the connection to ``namespace``."""
        manager = self.server.manager
        return sum(
            1
            for sid, _ in manager.get_participants(namespace, None)
            if manager.is_connected(sid, namespace)
        )

    # -- delivery and lifecycle ---------------------------------------------------------------

    async def emit(
        self,
        event: str,
        data: dict[str, Any],
        rooms: list[str],
        namespace: str,
        *,
        local_only: bool = False,
    ) -> None:
        """Send to every socket in any of ``rooms``, once per socket; ``local_only``: to this
        instance's sockets only, not through the client manager's queue (Redis) too."""
        await self.server.emit(event, data, to=rooms, namespace=namespace, ignore_queue=local_only)

    async def emit_to_socket(
        self, event: str, data: dict[str, Any], sid: str, namespace: str
    ) -> None:
        """Send to one socket of this instance."""
        await self.server.emit(event, data, to=sid, namespace=namespace, ignore_queue=True)

    async def disconnect_socket(self, sid: str, namespace: str) -> None:
        """End one socket's membership of ``namespace`` (Socket.IO's DISCONNECT is sent)."""
        await self.server.disconnect(sid, namespace=namespace, ignore_queue=True)

    def room_count(self, sid: str, namespace: str, prefix: str) -> int:
        """How many rooms whose name starts with ``prefix`` socket ``sid`` is in."""
        try:
            rooms = self.server.rooms(sid, namespace=namespace)
        except KeyError:
            return 0
        return sum(1 for room in rooms if isinstance(room, str) and room.startswith(prefix))

    def local_rooms(self, namespace: str) -> list[str]:
        """The named rooms that sockets of this instance are in."""
        rooms = self.server.manager.rooms.get(namespace, {})
        return [room for room, members in rooms.items() if isinstance(room, str) and members]

    async def disconnect_all(self) -> None:
        """Drop every client's transport, as a stopped server would (at shutdown).

        Clients then reconnect, to this instance when it is back or to another one. Neither
        Socket.IO's DISCONNECT nor Engine.IO's CLOSE is sent: clients take both for a
        deliberate goodbye and stay away. Each connection is closed without waiting for its
        client, and ending its send queue makes Engine.IO close the websocket (or answer the
        long poll) from the server's side.
        """
        eio = self.server.eio
        for socket in list(eio.sockets.values()):
            with contextlib.suppress(Exception):
                await socket.close(wait=False, abort=True, reason=eio.reason.SERVER_DISCONNECT)
                socket.queue.put_nowait(None)

    async def shutdown(self) -> None:
        """Stop Socket.IO's background tasks and cancel what is left of the tasks it started
        (idle ping timers and the like); safe to call more than once."""
        if not self._shut_down:
            self._shut_down = True
            await self.server.shutdown()
        self.pings.close()
        pending = [task for task in self._tasks if not task.done()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


__all__ = ["ConnectionRefused", "SocketServer"]
