"""Sockets of a :class:`SocketServer` without a network: Engine.IO sockets registered as a
connected client's would be, whose queued packets a test (or ``scripts/bench micro --event
emit``) reads back. Everything from ``SocketServer.emit`` to each client's send queue runs
as served (the client manager, Engine.IO's ``send``, the queue bound); nothing writes them
to a transport.
"""

from __future__ import annotations

import asyncio
from typing import Any

from engineio.async_socket import AsyncSocket

from server.realtime.sockets import SocketServer


class LocalSockets:
    def __init__(self, sockets: SocketServer) -> None:
        self.sockets = sockets
        self.server: Any = sockets.server

    async def connect(self, namespace: str = "/", rooms: tuple[str, ...] = ()) -> LocalSocket:
        """A client connected to ``namespace`` and in ``rooms``."""
        engine = self.server.eio
        eio_sid = engine.generate_id()
        socket = AsyncSocket(engine, eio_sid)
        socket.connected = True
        engine.sockets[eio_sid] = socket
        sid = await self.server.manager.connect(eio_sid, namespace)
        for room in rooms:
            await self.sockets.enter_room(sid, room, namespace)
        return LocalSocket(sid, eio_sid, socket)


class LocalSocket:
    def __init__(self, sid: str, eio_sid: str, socket: Any) -> None:
        self.sid = sid
        self.eio_sid = eio_sid
        self.socket = socket

    def take(self) -> list[Any]:
        """The data of every packet queued for this client since the last take, oldest
        first (Engine.IO's end marker as ``None``)."""
        taken: list[Any] = []
        queue = self.socket.queue
        while True:
            try:
                item = queue.get_nowait()
            except asyncio.QueueEmpty:
                return taken
            queue.task_done()
            taken.append(None if item is None else item.data)


__all__ = ["LocalSocket", "LocalSockets"]
