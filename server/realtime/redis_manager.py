"""Cross-instance Socket.IO delivery over Redis pub/sub: the python-socketio client manager.

python-socketio's ``AsyncPubSubManager.emit`` serves this instance's clients first and then
publishes the message for the other instances, whose listener task hands it to their own
clients; an instance ignores its own messages. Redis pub/sub is at-most-once: clients notice
a lost event by its ``seq`` and fill the gap by replay from the store. This subclass of
``AsyncRedisManager`` adds what running it in production needs:

* publishing never raises and never makes an emit wait: messages go to a bounded queue that
  one sender task publishes in order, many per round trip, with short timeouts; after a
  failure, messages are dropped for :data:`PUBLISH_PAUSE_S` or until a probe gets through,
  and the rooms they were for are remembered for :class:`LossRepair`;
* the listener (and the sender) are tasks the application lifecycle starts and stops
  (python-socketio would start the listener lazily, untracked, at the first connection); the
  listener has a Redis client of its own, ignores our own messages before decoding them, and
  resubscribes after any error with a backoff bounded by :data:`MAX_LISTEN_BACKOFF_S`;
* a round-trip probe: the instance publishes a nonce on a probe channel only it subscribes
  to, on the listener's connection, and waits for its listener to hear it.

The watchdog that probes it lives in :mod:`server.realtime.redis_watchdog`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

import socketio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from server.tasks import start_task, stop_task

log = logging.getLogger(__name__)

#: Connecting to Redis, or a publish or a PING, gives up after this many seconds.
REDIS_TIMEOUT_S = 1.0
#: After a failed publish, publishes are dropped for this long (or until a probe succeeds).
PUBLISH_PAUSE_S = 1.0
MIN_LISTEN_BACKOFF_S = 0.1
MAX_LISTEN_BACKOFF_S = 2.0
#: How long a probe waits to be heard.
PROBE_TIMEOUT_S = 1.0
#: Messages waiting to be published, at most; more are dropped (clients see gaps).
MAX_PUBLISH_QUEUE = 10_000
#: At most this many messages go to Redis in one round trip.
MAX_PUBLISH_BATCH = 256
#: At shutdown, how long the messages still queued may take to go out.
FLUSH_TIMEOUT_S = 1.0
#: Rooms of dropped messages remembered for :class:`LossRepair` (beyond: clients still see
#: the gap at the job's next event).
MAX_DROPPED_ROOMS = 10_000


class JobspineRedisManager(socketio.AsyncRedisManager):  # type: ignore[misc]
    """An ``AsyncRedisManager`` whose publishing cannot stall an emit, whose tasks the
    application owns (:meth:`start`, :meth:`close`), and whose round trip can be probed."""

    host_id: str
    channel: str
    redis_url: str

    def __init__(self, url: str, *, channel: str, timeout_s: float = REDIS_TIMEOUT_S) -> None:
        super().__init__(url, channel=channel)
        self.probe_channel = f"{channel}:probe:{self.host_id}"
        # How our messages end: json.dumps of python-socketio's dicts, host_id last.
        self._own_marker = f'"host_id": "{self.host_id}"}}'.encode()
        self._timeout_s = timeout_s
        self._publisher: Any = None
        self._outbox: asyncio.Queue[tuple[str, list[str]]] = asyncio.Queue(MAX_PUBLISH_QUEUE)
        self._sender: asyncio.Task[None] | None = None
        self._listener: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self._awaiting_probe: dict[str, asyncio.Future[None]] = {}
        self._publish_paused_until = 0.0
        self._publishing_fails = False
        self._dropped_rooms: set[str] = set()
        self._closed = False
        #: Successful subscriptions of the listener: more than one means it lost one.
        self.subscriptions = 0
        #: Messages published, and messages dropped (Redis unreachable or paused).
        self.published = 0
        self.dropped = 0
        self.listener_restarts = 0

    # -- publishing ---------------------------------------------------------------------------

    async def _publish(self, data: Any) -> None:
        """Queue ``data`` for the other instances, at most once; never raises, never waits.

        One sender task publishes the queue in order, many messages per round trip, so an
        emit costs Redis nothing on the caller's path (an RPC's ack does not wait for it).
        """
        if self._closed:
            return
        rooms = _rooms_of(data)
        if time.monotonic() < self._publish_paused_until or self._outbox.full():
            self._dropped(rooms)
            return
        self._outbox.put_nowait((self.json.dumps(data), rooms))

    async def _send_queued(self) -> None:
        """The sender task: publishes the queue in batches until cancelled."""
        outbox = self._outbox
        while True:
            batch = [await outbox.get()]
            while len(batch) < MAX_PUBLISH_BATCH and not outbox.empty():
                batch.append(outbox.get_nowait())
            try:
                if time.monotonic() >= self._publish_paused_until and await self._send(
                    self.channel, [payload for payload, _ in batch]
                ):
                    self.published += len(batch)
                    self._publishing_works()
                else:
                    for _, rooms in batch:
                        self._dropped(rooms)
                    self._publishing_failed()
            finally:
                for _ in batch:
                    outbox.task_done()

    def _publishing_failed(self) -> None:
        if self._publish_paused_until <= time.monotonic():
            self._publish_paused_until = time.monotonic() + PUBLISH_PAUSE_S
        if not self._publishing_fails:
            self._publishing_fails = True
            log.warning(
                "redis: cannot publish; other instances miss events until it heals "
                "(clients fill the gap by replay)"
            )

    def _dropped(self, rooms: list[str]) -> None:
        self.dropped += 1
        if len(self._dropped_rooms) < MAX_DROPPED_ROOMS:
            self._dropped_rooms.update(rooms)

    def remember_dropped(self, rooms: Iterable[str]) -> None:
        """Give back rooms taken with :meth:`take_dropped_rooms` that were not handled."""
        self._dropped_rooms.update(rooms)

    def take_dropped_rooms(self) -> set[str]:
        """The rooms of the messages dropped since the last call."""
        rooms, self._dropped_rooms = self._dropped_rooms, set()
        return rooms

    @property
    def publishing_fails(self) -> bool:
        """Whether the last publish failed (and no publish or probe got through since)."""
        return self._publishing_fails

    def _publishing_works(self) -> None:
        self._publish_paused_until = 0.0
        if self._publishing_fails:
            self._publishing_fails = False
            log.info("redis: publishing again")

    async def _send(self, channel: str, payloads: list[str]) -> bool:
        """Publish ``payloads`` in order, in one round trip; whether Redis took them."""
        try:
            if self._publisher is None:
                self._publisher = self._new_client(blocking=False)
            async with asyncio.timeout(self._timeout_s):
                if len(payloads) == 1:
                    await self._publisher.publish(channel, payloads[0])
                else:
                    async with self._publisher.pipeline(transaction=False) as pipe:
                        for payload in payloads:
                            pipe.publish(channel, payload)
                        await pipe.execute()
        except Exception as exc:  # redis-py raises many kinds; each means "not now"
            log.debug("redis publish failed: %r", exc)
            return False
        return True

    def _new_client(self, *, blocking: bool) -> Any:
        """A redis-py asyncio client of its own; ``blocking`` for the listener's reads."""
        return self._get_redis_module().Redis.from_url(
            self.redis_url,
            socket_connect_timeout=self._timeout_s,
            socket_timeout=None if blocking else self._timeout_s,
            socket_keepalive=True,
            retry=Retry(NoBackoff(), 1),
        )

    async def ping(self) -> bool:
        """Whether Redis answers a PING within the timeout."""
        try:
            if self._publisher is None:
                self._publisher = self._new_client(blocking=False)
            await asyncio.wait_for(self._publisher.ping(), self._timeout_s)
        except Exception:
            return False
        return True

    # -- listening ----------------------------------------------------------------------------

    def initialize(self) -> None:
        """python-socketio calls this at the first connection, where the base class would
        start the listener as a task nobody stops; :meth:`start` does instead."""

    def start(self) -> None:
        """Start the listener and the sender (the application's lifecycle calls this)."""
        self.start_listener()
        if self._sender is None:
            self._sender = start_task(self._send_queued(), name="redis-sender")

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
            # python-socketio's loop: it dispatches what _listen yields to local clients.
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

    async def _listen(self) -> AsyncIterator[bytes]:
        """The Socket.IO channel's messages but our own; probes are answered here."""
        channel, probe_channel = self.channel.encode(), self.probe_channel.encode()
        async for message in self._subscription():
            if message.get("type") != "message":
                continue
            if message.get("channel") == channel:
                data = message["data"]
                if not self._is_own(data):
                    yield data
            elif message.get("channel") == probe_channel:
                self._heard(message.get("data"))

    def _is_own(self, data: object) -> bool:
        """Whether ``data`` is a message this instance published, which python-socketio
        would decode only to ignore. (A callback addressed to us carries our ``host_id`` too,
        but not last.)"""
        return isinstance(data, bytes) and data.endswith(self._own_marker)

    async def _subscription(self) -> AsyncIterator[Mapping[str, Any]]:
        """Messages of both channels; after any error, a new connection and subscription."""
        backoff = MIN_LISTEN_BACKOFF_S
        failing = False
        while True:
            client = self._new_client(blocking=True)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel, self.probe_channel)
                self.subscriptions += 1
                self._subscribed.set()
                backoff, failing = MIN_LISTEN_BACKOFF_S, False
                async for message in pubsub.listen():
                    yield message
                log.warning("redis listener: the subscription ended; subscribing again")
            except Exception as exc:  # a lost or refused connection: retry below
                if not failing:
                    log.warning("redis listener: %s; retrying", exc)
                failing = True
            finally:
                self._subscribed.clear()
                await _close_quietly(pubsub, client)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_LISTEN_BACKOFF_S)

    def _heard(self, data: object) -> None:
        nonce = data.decode(errors="replace") if isinstance(data, bytes) else str(data)
        waiting = self._awaiting_probe.get(nonce)
        if waiting is not None and not waiting.done():
            waiting.set_result(None)

    # -- probing and lifecycle ----------------------------------------------------------------

    async def probe(self, *, timeout_s: float = PROBE_TIMEOUT_S) -> bool:
        """Publish a nonce and wait up to ``timeout_s`` for our own listener to hear it."""
        nonce = uuid.uuid4().hex
        heard: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._awaiting_probe[nonce] = heard
        try:
            if not await self._send(self.probe_channel, [nonce]):
                return False
            await asyncio.wait_for(heard, timeout_s)
        except TimeoutError:
            return False
        finally:
            del self._awaiting_probe[nonce]
        self._publishing_works()  # publish again at once
        return True

    async def close(self) -> None:
        """Publish what is queued (for up to :data:`FLUSH_TIMEOUT_S`), stop the sender and
        the listener, and close every connection; later publishes are dropped."""
        self._closed = True
        sender, self._sender = self._sender, None
        if sender is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._outbox.join(), FLUSH_TIMEOUT_S)
            await stop_task(sender)
        await self.stop_listener()
        publisher, self._publisher = self._publisher, None
        if publisher is not None:
            await _close_quietly(publisher)


def _rooms_of(data: Any) -> list[str]:
    """The rooms a python-socketio message is for (none for other kinds)."""
    rooms = data.get("room") if isinstance(data, dict) else None
    if isinstance(rooms, str):
        return [rooms]
    if isinstance(rooms, list):
        return [room for room in rooms if isinstance(room, str)]
    return []


async def _close_quietly(*clients: Any) -> None:
    for client in clients:
        with contextlib.suppress(Exception):
            await client.aclose()


__all__ = ["JobspineRedisManager"]
