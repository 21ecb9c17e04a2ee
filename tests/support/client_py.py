"""Helpers for tests of the Python client (``jobspine_client``) against real servers.

- :class:`GatedSockets`: a socket factory whose (re)connects wait for ``gate``, and which
  records every call the client emits: a test decides when the client comes back, so what
  happened meanwhile is certain, and sees which calls the re-sync made.
- :func:`killable_web`: ``python -m server`` on a given port (a restart keeps the port), to
  be SIGKILLed.
- :class:`Seen`: what a watch's listeners received, with waiting by condition.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import attrs
import socketio

from jobspine_client import Watch
from jobspine_client.connection import MAX_MESSAGE_BYTES
from jobspine_shared.models import JobRecord
from tests.support.processes import SECRET, UNLIMITED_CALLS, Proc, spawn, stop, wait_ready
from workers.testing import wait_until


class GatedSockets:
    """``socket_factory`` for ``JobspineClient``: fresh sockets (no reconnects of their own)
    that wait for ``gate`` before connecting and log the events they emit."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.gate.set()
        self.emitted: list[str] = []
        self.sockets: list[socketio.AsyncClient] = []

    def __call__(self) -> socketio.AsyncClient:
        factory = self

        class Gated(socketio.AsyncClient):  # type: ignore[misc]  # socketio ships no types
            async def connect(self, *args: Any, **kwargs: Any) -> None:
                await factory.gate.wait()
                await super().connect(*args, **kwargs)

            async def emit(self, event: str, *args: Any, **kwargs: Any) -> None:
                factory.emitted.append(event)
                await super().emit(event, *args, **kwargs)

        socket = Gated(
            reconnection=False,
            handle_sigint=False,
            websocket_extra_options={"max_msg_size": MAX_MESSAGE_BYTES},
        )
        self.sockets.append(socket)
        return socket

    async def drop(self) -> None:
        """Close the current connection from the client's side, as a network loss would."""
        await self.sockets[-1].eio.disconnect(abort=True)


@attrs.define
class Seen:
    """A watch's ``event``/``change``/``reset`` calls, in order."""

    events: list[dict[str, Any]] = attrs.field(factory=list)
    changes: list[JobRecord] = attrs.field(factory=list)
    resets: list[JobRecord] = attrs.field(factory=list)
    order: list[str] = attrs.field(factory=list)

    def listen(self, watch: Watch) -> None:
        watch.on("event", lambda e: self._note("event", self.events, e))
        watch.on("change", lambda j: self._note("change", self.changes, j))
        watch.on("reset", lambda j: self._note("reset", self.resets, j))

    def _note(self, name: str, into: list[Any], value: Any) -> None:
        into.append(value)
        self.order.append(name)

    @property
    def seqs(self) -> list[int]:
        return [e["seq"] for e in self.events]

    async def until(self, check: Callable[[], bool], what: str, within_s: float = 20.0) -> None:
        await wait_until(check, within_s=within_s, what=what)


@contextlib.asynccontextmanager
async def killable_web(port: int, name: str = "web", **env: str) -> AsyncIterator[Proc]:
    """``python -m server`` on ``port`` with the e2e secret, once ready; stopped afterwards
    unless the test killed it."""
    settings = {"HOST": "127.0.0.1", "PORT": str(port), "JWT_SECRET": SECRET, **UNLIMITED_CALLS}
    proc = await spawn(name, ["-m", "server"], {**settings, **env})
    try:
        await wait_ready(f"http://127.0.0.1:{port}", proc)
        yield proc
    finally:
        await stop(proc)


@attrs.define
class RawWorker:
    """A worker's raw calls on ``/workers`` (no SDK): the test decides every event."""

    sio: socketio.AsyncClient

    async def ok(self, event: str, payload: dict[str, Any]) -> dict[str, Any]:
        ack = await self.sio.call(event, payload, namespace="/workers", timeout=10)
        assert isinstance(ack, dict), ack
        assert ack.get("ok") is True, f"{event} failed: {ack!r}"
        return ack


@contextlib.asynccontextmanager
async def raw_worker(url: str, token: str) -> AsyncIterator[RawWorker]:
    sio = socketio.AsyncClient(reconnection=False)
    await sio.connect(url, auth={"token": token}, namespaces=["/workers"], wait_timeout=10)
    try:
        yield RawWorker(sio)
    finally:
        await sio.disconnect()


__all__ = ["GatedSockets", "RawWorker", "Seen", "killable_web", "raw_worker"]
