"""Cross-instance Socket.IO delivery over Redis pub/sub: the python-socketio client manager.

python-socketio's ``AsyncPubSubManager`` serves this instance's clients and publishes each
message for the other instances, whose listener hands it to their own clients. This subclass
of ``AsyncRedisManager`` is the one module that overrides its private hooks (``emit``,
``_publish``, ``_thread``, ``basic_enter_room`` / ``basic_leave_room``). What it adds:

* **routing** (:mod:`server.realtime.redis_routes`): an emit to jobspine rooms is published
  on one channel per room, which an instance subscribes while one of its sockets is in the
  room, so an instance hears only events it delivers;
* **signing** (:mod:`server.realtime.redis_signing`): every message is sealed under
  ``REDIS_SIGNING_KEY``; one without a valid signature is dropped and counted
  (:attr:`JobspineRedisManager.rejected`, ``jobspine_redis_rejected_total``);
* **one encoding per event**: an emit encodes its Socket.IO packet once; the local sockets
  and every other instance get that text (an instance hears it and sends it on without
  decoding it);
* publishing never raises and never makes an emit wait (:mod:`server.realtime.redis_outbox`);
* the listener is a task the application starts and stops (python-socketio would start it
  lazily, untracked); it has a connection of its own, skips our own messages before
  checking them, and resubscribes after any error with a bounded backoff;
* a round-trip probe: a nonce published on a probe channel only this instance subscribes
  to, on the listener's connection, waited for by the watchdog
  (:mod:`server.realtime.redis_watchdog`).

Redis pub/sub is at-most-once: clients notice a lost event by its ``seq`` and fill the gap
by replay from the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
import socketio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from server.realtime.local_emit import event_packet, recipients, send_to, skipped
from server.realtime.redis_connection import RedisConnection, Reply
from server.realtime.redis_outbox import RedisOutbox
from server.realtime.redis_routes import RoomRoutes, is_routed
from server.realtime.redis_signing import MessageSigner, host_of
from server.tasks import start_task, stop_task

log = logging.getLogger(__name__)

#: Connecting to Redis, or a publish or a PING, gives up after this many seconds.
REDIS_TIMEOUT_S = 1.0
MIN_LISTEN_BACKOFF_S = 0.1
MAX_LISTEN_BACKOFF_S = 2.0
#: How long a probe waits to be heard.
PROBE_TIMEOUT_S = 1.0
#: The method of an emit whose body is an encoded Socket.IO packet (python-socketio's own
#: ``emit`` carries the data in the header instead: used for callbacks only).
EMIT_PACKET = "emit_packet"
_REMOTE_HANDLERS = {
    "emit": "_handle_emit",
    "disconnect": "_handle_disconnect",
    "enter_room": "_handle_enter_room",
    "leave_room": "_handle_leave_room",
    "close_room": "_handle_close_room",
}


class JobspineRedisManager(socketio.AsyncRedisManager):  # type: ignore[misc]
    """An ``AsyncRedisManager`` that routes by room, signs, cannot stall an emit, whose tasks
    the application owns (:meth:`start`, :meth:`close`), and whose round trip can be probed."""

    host_id: str
    channel: str
    redis_url: str
    rooms: dict[str, dict[object, Any]]
    server: Any

    def __init__(
        self,
        url: str,
        *,
        channel: str,
        signer: MessageSigner,
        timeout_s: float = REDIS_TIMEOUT_S,
    ) -> None:
        super().__init__(url, channel=channel)
        self.probe_channel = f"{channel}:probe:{self.host_id}"
        self._signer = signer
        self._own = self.host_id.encode()
        self._timeout_s = timeout_s
        self.outbox = RedisOutbox(lambda: self._new_client(blocking=False), timeout_s=timeout_s)
        self.routes = RoomRoutes(channel)
        self._listener: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self._awaiting_probe: dict[str, asyncio.Future[None]] = {}
        #: Successful subscriptions of the listener: more than one means it lost one.
        self.subscriptions = 0
        self.listener_restarts = 0
        #: Messages dropped unopened: no valid signature under our keys.
        self.rejected = 0
        #: Messages heard from other instances (signature checked).
        self.received = 0

    # -- emitting -----------------------------------------------------------------------------

    async def emit(
        self,
        event: str,
        data: Any,
        namespace: str | None = None,
        room: Any = None,
        skip_sid: Any = None,
        callback: Any = None,
        to: Any = None,
        **kwargs: Any,
    ) -> None:
        """Encode the packet once, send it to our sockets in ``room`` and, unless
        ``ignore_queue``, publish it (:mod:`server.realtime.local_emit`)."""
        room = to or room
        namespace = namespace or "/"
        encoded = None
        if callback is None:
            encoded = event_packet(self.server, event, data, namespace)
        if encoded is None:  # a callback or binary attachments: python-socketio's own way
            await super().emit(event, data, namespace, room, skip_sid, callback, **kwargs)
            return
        skip = skipped(skip_sid)
        await send_to(self.server, encoded, recipients(self, namespace, room, skip))
        if not kwargs.get("ignore_queue"):
            self._publish_packet(encoded, namespace, room, skip)

    def _publish_packet(self, encoded: str, namespace: str, room: Any, skip: list[Any]) -> None:
        body = encoded.encode()
        rooms = [room] if isinstance(room, str) else None if room is None else list(room)
        if rooms and all(is_routed(r) for r in rooms):
            for index, name in enumerate(rooms):
                header: dict[str, Any] = {"method": EMIT_PACKET, "namespace": namespace}
                header.update(rooms=rooms, index=index, skip_sid=skip)
                self._offer(self.routes.channel_of(namespace, name), header, body, (name,))
            return
        header = {"method": EMIT_PACKET, "namespace": namespace, "rooms": rooms, "skip_sid": skip}
        self._offer(self.channel, header, body, tuple(rooms or ()))

    async def _publish(self, data: Any) -> None:
        """python-socketio's other messages (remote disconnects and rooms, callbacks); a
        ``close_room`` of a routed room goes on that room's channel."""
        room = data.get("room")
        channel = self.channel
        if data.get("method") == "close_room" and isinstance(room, str) and is_routed(room):
            channel = self.routes.channel_of(data.get("namespace") or "/", room)
        self._offer(channel, data, b"", tuple(_rooms_of(room)))

    def _offer(
        self, channel: str, header: dict[str, Any], body: bytes, rooms: tuple[str, ...]
    ) -> None:
        encoded = orjson.dumps(header)
        self.outbox.offer(channel, self._signer.seal(channel, self.host_id, encoded, body), rooms)

    # -- rooms --------------------------------------------------------------------------------

    def basic_enter_room(self, sid: str, namespace: str, room: Any, eio_sid: Any = None) -> None:
        opened = is_routed(room) and room not in self.rooms.get(namespace, {})
        super().basic_enter_room(sid, namespace, room, eio_sid=eio_sid)
        if opened:
            self.routes.opened(namespace, room)

    def basic_leave_room(self, sid: str, namespace: str, room: Any) -> None:
        super().basic_leave_room(sid, namespace, room)
        if is_routed(room) and room not in self.rooms.get(namespace, {}):
            self.routes.closed(namespace, room)

    async def wait_routed(self, namespace: str, room: str) -> None:
        """Until other instances' events for ``room`` reach this one (bounded wait)."""
        await self.routes.wait(namespace, room)

    # -- hearing ------------------------------------------------------------------------------

    async def _thread(self) -> None:
        """The listener task: every message heard, opened and handled, until cancelled."""
        own, probe_channel = self._own, self.probe_channel.encode()
        async for replies in self._subscription():
            for reply in replies:
                if not isinstance(reply, list) or len(reply) != 3:
                    continue
                kind, channel, data = reply
                if kind != b"message":
                    if kind in (b"subscribe", b"unsubscribe") and isinstance(channel, bytes):
                        self.routes.answered(kind.decode(), channel)
                elif channel == probe_channel:
                    self._heard(data)
                elif isinstance(data, bytes) and host_of(data) != own:
                    try:
                        await self._receive(channel, data)
                    except asyncio.CancelledError:
                        raise
                    except Exception:
                        log.exception("redis: handling a message from another instance failed")

    async def _receive(self, channel: bytes, message: bytes) -> None:
        """A message of another instance (our own are skipped unopened)."""
        opened = self._signer.open(channel, message)
        if opened is None:
            self.rejected += 1
            if self.rejected == 1 or self.rejected % 1000 == 0:
                log.warning(
                    "redis: dropped %d message(s) without a valid signature on %s",
                    self.rejected,
                    channel.decode(errors="replace"),
                )
            return
        self.received += 1
        header_text, body = opened
        header = orjson.loads(header_text)
        method = header.get("method")
        if method == EMIT_PACKET:
            await self._deliver(header, body)
        elif method == "callback":
            await self._handle_callback(header)
        elif method in _REMOTE_HANDLERS:
            await getattr(self, _REMOTE_HANDLERS[method])(header)

    async def _deliver(self, header: dict[str, Any], body: bytes) -> None:
        """Our sockets an emit heard from another instance is for. On a room's channel, the
        room's sockets that are in none of the emit's earlier rooms (those heard it on the
        earlier room's channel): each socket gets an emit once, however many rooms."""
        namespace, rooms = header["namespace"], header["rooms"]
        skip = set(header.get("skip_sid") or ())
        index = header.get("index")
        if index is None:
            eio_sids = recipients(self, namespace, rooms, skip)
        else:
            local = self.rooms.get(namespace, {})
            members = local.get(rooms[index])
            if not members:
                return
            earlier = [local[r] for r in rooms[:index] if r in local]
            eio_sids = [
                eio
                for sid, eio in members.items()
                if sid not in skip and not any(sid in e for e in earlier)
            ]
        if eio_sids:  # the copy of a socket's earlier room: checked, nothing to send
            await send_to(self.server, body.decode(), eio_sids)

    async def _subscription(self) -> AsyncIterator[list[Reply]]:
        """The replies of every channel, a chunk read at a time; after any error, a new
        connection and subscription."""
        backoff = MIN_LISTEN_BACKOFF_S
        failing = False
        while True:
            client = self._new_client(blocking=True)
            subscriber: RedisConnection | None = None
            try:
                subscriber = await RedisConnection.open(client)
                await subscriber.send((b"SUBSCRIBE", self.channel, self.probe_channel))
                self.routes.attach(subscriber)
                self.subscriptions += 1
                self._subscribed.set()
                backoff, failing = MIN_LISTEN_BACKOFF_S, False
                while True:
                    yield await subscriber.replies()
            except Exception as exc:  # a lost or refused connection: retry below
                if not failing:
                    log.warning("redis listener: %s; retrying", exc)
                failing = True
            finally:
                self._subscribed.clear()
                await _close_quietly(subscriber, client)
                self.routes.detach()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_LISTEN_BACKOFF_S)

    def _heard(self, data: object) -> None:
        nonce = data.decode(errors="replace") if isinstance(data, bytes) else str(data)
        waiting = self._awaiting_probe.get(nonce)
        if waiting is not None and not waiting.done():
            waiting.set_result(None)

    def _new_client(self, *, blocking: bool) -> Any:
        """A redis-py asyncio client of its own; ``blocking`` for the listener's reads."""
        return self._get_redis_module().Redis.from_url(
            self.redis_url,
            socket_connect_timeout=self._timeout_s,
            socket_timeout=None if blocking else self._timeout_s,
            socket_keepalive=True,
            retry=Retry(NoBackoff(), 1),
        )

    # -- lifecycle and probing ----------------------------------------------------------------

    def initialize(self) -> None:
        """python-socketio calls this at the first connection, where the base class would
        start the listener as a task nobody stops; :meth:`start` does instead."""

    def start(self) -> None:
        """Start the listener and the sender (the application's lifecycle calls this)."""
        self.start_listener()
        self.outbox.start()

    @property
    def listener_running(self) -> bool:
        return self._listener is not None and not self._listener.done()

    @property
    def subscribed(self) -> bool:
        """Whether the listener is subscribed and reading."""
        return self._subscribed.is_set()

    async def wait_subscribed(self, within: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._subscribed.wait(), within)
        return self.subscribed

    def start_listener(self) -> None:
        if not self.listener_running:
            self._listener = start_task(self._thread(), name="redis-listener")

    async def stop_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            await stop_task(listener)
        self._subscribed.clear()

    async def restart_listener(self) -> None:
        self.listener_restarts += 1
        await self.stop_listener()
        self.start_listener()

    async def probe(self, *, timeout_s: float = PROBE_TIMEOUT_S) -> bool:
        """Publish a nonce and wait up to ``timeout_s`` for our own listener to hear it."""
        nonce = uuid.uuid4().hex
        heard: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._awaiting_probe[nonce] = heard
        try:
            if not await self.outbox.send([(self.probe_channel, nonce.encode())]):
                return False
            await asyncio.wait_for(heard, timeout_s)
        except TimeoutError:
            return False
        finally:
            del self._awaiting_probe[nonce]
        self.outbox.works()  # publish again at once
        return True

    async def close(self) -> None:
        """Publish what is queued, stop the sender and the listener, close every
        connection; later publishes are dropped."""
        await self.outbox.close()
        await self.stop_listener()


def _rooms_of(room: Any) -> list[str]:
    """The named rooms of a message's ``room`` field."""
    if isinstance(room, str):
        return [room]
    if isinstance(room, list):
        return [r for r in room if isinstance(r, str)]
    return []


async def _close_quietly(subscriber: RedisConnection | None, client: Any) -> None:
    with contextlib.suppress(Exception):
        if subscriber is not None:
            await subscriber.close()
    with contextlib.suppress(Exception):
        await client.aclose()


__all__ = ["EMIT_PACKET", "JobspineRedisManager"]
