"""Emitting to this instance's sockets: one encoding, one Engine.IO packet, sent in turn.

python-socketio's ``AsyncManager.emit`` encodes an event once but then starts one asyncio
task per recipient and waits for them all with ``asyncio.wait``: for the one or two
watchers a job event usually has, that is a task, its first step on the next loop turn, a
waiter future and its done callbacks per event, and a loop turn of delay before the emit
returns. Nothing there needs to run concurrently: Engine.IO's ``send`` only appends to the
client's queue (:mod:`server.realtime.send_queue`, unbounded as Engine.IO's own; a client
over ``MAX_CLIENT_QUEUE`` is dropped by :mod:`server.realtime.backpressure` without making
the emit wait), so sending to each recipient in turn, in the emitting task, delivers the
same packets in the same order.

:class:`LocalManager` is the client manager of an instance without Redis; the Redis
manager (:mod:`server.realtime.redis_manager`) sends to its own sockets the same way,
through :func:`event_packet`, :func:`recipients` and :func:`send_to`. An emit with a
callback (each recipient needs its own ack id) or with binary attachments (several frames
per packet) keeps python-socketio's own path.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable
from typing import Any

import socketio
from engineio import packet as eio_packet
from socketio import packet as sio_packet

log = logging.getLogger(__name__)


def event_packet(server: Any, event: str, data: Any, namespace: str) -> str | None:
    """The encoded Socket.IO EVENT packet of ``emit(event, data)`` as python-socketio
    builds it (a tuple is several arguments, ``None`` none); ``None`` when it has binary
    attachments."""
    args = list(data) if isinstance(data, tuple) else [] if data is None else [data]
    encoded = server.packet_class(sio_packet.EVENT, namespace=namespace, data=[event, *args])
    text = encoded.encode()
    return text if isinstance(text, str) else None


def skipped(skip_sid: Any) -> list[Any]:
    """python-socketio's ``skip_sid`` (one sid, a list of them, or ``None``) as a list."""
    if skip_sid is None:
        return []
    return list(skip_sid) if isinstance(skip_sid, list) else [skip_sid]


def recipients(manager: Any, namespace: str, room: Any, skip: Collection[Any]) -> list[str]:
    """The Engine.IO sids of this instance's sockets in ``room`` (a name, a list of names,
    or ``None`` for the whole namespace) but those in ``skip``: each socket once, however
    many of the rooms it is in. A list, taken before any send: a send may end a socket
    (a stale one closes at its ping timeout) and with it its rooms."""
    if namespace not in manager.rooms:
        return []
    return [eio for sid, eio in manager.get_participants(namespace, room) if sid not in skip]


async def send_to(server: Any, encoded: str, eio_sids: Iterable[str]) -> None:
    """One Engine.IO MESSAGE packet of ``encoded`` to each of ``eio_sids``, in turn (each
    send only queues). A failing send is logged and skips that socket only, as a failing
    task of python-socketio's own emit would."""
    packet: eio_packet.Packet | None = None
    engine = server.eio
    for eio_sid in eio_sids:
        if packet is None:
            packet = eio_packet.Packet(eio_packet.MESSAGE, encoded)
        try:
            await engine.send_packet(eio_sid, packet)
        except Exception:
            log.exception("sending an event to connection %s failed", eio_sid)


class LocalManager(socketio.AsyncManager):  # type: ignore[misc]
    """python-socketio's in-process client manager, emitting without a task per
    recipient (see the module's doc)."""

    rooms: dict[str, dict[object, Any]]
    server: Any

    async def emit(
        self,
        event: str,
        data: Any,
        namespace: str,
        room: Any = None,
        skip_sid: Any = None,
        callback: Any = None,
        to: Any = None,
        **kwargs: Any,
    ) -> None:
        room = to or room
        if namespace not in self.rooms:
            return
        encoded = None
        if callback is None:
            encoded = event_packet(self.server, event, data, namespace)
        if encoded is None:  # a callback or binary attachments: python-socketio's own way
            await super().emit(event, data, namespace, room, skip_sid, callback, **kwargs)
            return
        await send_to(self.server, encoded, recipients(self, namespace, room, skipped(skip_sid)))


__all__ = ["LocalManager", "event_packet", "recipients", "send_to", "skipped"]
