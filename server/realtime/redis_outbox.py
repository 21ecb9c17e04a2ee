"""Publishing to Redis without ever making an emit wait or fail.

Sealed messages go to a bounded queue that one sender task publishes in order, many per
round trip (a pipeline), with short timeouts. While messages keep coming (the previous batch
began less than :data:`BUSY_GAP_S` ago), the sender waits :data:`PUBLISH_WINDOW_S` after
a batch's first message for more: each batch costs the publishing instance a write and a read
of the Redis socket, and every receiving instance a read and a wake-up of each of its
clients' writers, so fewer, larger batches cost every instance less. A message after a quiet
spell goes out at once. After a failure, messages are dropped for
:data:`PUBLISH_PAUSE_S` or until a probe gets through, and the rooms they were for are
remembered so that the watchdog's :class:`~server.realtime.redis_watchdog.LossRepair` can
make up for them once Redis works again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from server.realtime.redis_connection import RedisConnection
from server.tasks import start_task, stop_task

log = logging.getLogger(__name__)

#: After a failed publish, publishes are dropped for this long (or until a probe succeeds).
PUBLISH_PAUSE_S = 1.0
#: Messages waiting to be published, at most; more are dropped (clients see gaps).
MAX_PUBLISH_QUEUE = 10_000
#: At most this many messages go to Redis in one round trip.
MAX_PUBLISH_BATCH = 256
#: How long a batch waits for more messages while traffic is continuous.
PUBLISH_WINDOW_S = 0.001
#: Traffic counts as continuous when the previous batch began less than this ago.
BUSY_GAP_S = 0.005
#: At shutdown, how long the messages still queued may take to go out.
FLUSH_TIMEOUT_S = 1.0
#: Rooms of dropped messages remembered for the repair (beyond: clients still see the gap
#: at the job's next event).
MAX_DROPPED_ROOMS = 10_000

#: ``(channel, sealed message, rooms it is for)``
Outgoing = tuple[str, bytes, tuple[str, ...]]


class RedisOutbox:
    def __init__(
        self,
        connect: Callable[[], Any],
        *,
        timeout_s: float,
        window_s: float = PUBLISH_WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
        gather: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """``connect``: a new non-blocking redis-py asyncio client (made at first use);
        ``window_s``: how long a batch waits for more while traffic is continuous (0: never);
        ``clock`` and ``gather`` (the wait for more) are the tests' to replace."""
        self._connect = connect
        self._timeout_s = timeout_s
        self._window_s = window_s
        self._clock = clock
        self._gather = gather
        self._last_batch_at = -BUSY_GAP_S
        self._client: Any = None
        self._publishing: RedisConnection | None = None
        #: One batch at a time on the connection: the sender's and a probe's replies would mix.
        self._sending = asyncio.Lock()
        self._queue: asyncio.Queue[Outgoing] = asyncio.Queue(MAX_PUBLISH_QUEUE)
        self._sender: asyncio.Task[None] | None = None
        self._paused_until = 0.0
        self._failing = False
        self._dropped_rooms: set[str] = set()
        self._closed = False
        #: Messages published, and messages dropped (Redis unreachable or paused).
        self.published = 0
        self.dropped = 0

    def offer(self, channel: str, message: bytes, rooms: tuple[str, ...]) -> None:
        """Queue one message, at most once; never raises, never waits."""
        if self._closed:
            return
        if time.monotonic() < self._paused_until or self._queue.full():
            self._drop(rooms)
            return
        self._queue.put_nowait((channel, message, rooms))

    def start(self) -> None:
        if self._sender is None:
            self._sender = start_task(self._send_queued(), name="redis-sender")

    async def _send_queued(self) -> None:
        queue = self._queue
        while True:
            batch = [await queue.get()]
            try:
                if self._window_s > 0 and self._clock() - self._last_batch_at < BUSY_GAP_S:
                    await self._gather(self._window_s)
                self._last_batch_at = self._clock()
                while len(batch) < MAX_PUBLISH_BATCH and not queue.empty():
                    batch.append(queue.get_nowait())
                if time.monotonic() >= self._paused_until and await self.send(
                    [(channel, message) for channel, message, _ in batch]
                ):
                    self.published += len(batch)
                    self.works()
                else:
                    for _, _, rooms in batch:
                        self._drop(rooms)
                    self._failed()
            finally:
                for _ in batch:
                    queue.task_done()

    async def send(self, messages: list[tuple[str, bytes]]) -> bool:
        """Publish ``(channel, message)`` pairs in order, in one write and one round trip;
        whether Redis took them."""
        async with self._sending:
            try:
                async with asyncio.timeout(self._timeout_s):
                    if self._publishing is None:
                        self._publishing = await RedisConnection.open(self.client())
                    publishing = self._publishing
                    await publishing.send(*((b"PUBLISH", *message) for message in messages))
                    await publishing.read(len(messages))
            except BaseException as exc:  # each means "not now"; the connection is out of step
                await self._close_publishing()
                if not isinstance(exc, Exception):
                    raise
                log.debug("redis publish failed: %r", exc)
                return False
        return True

    def client(self) -> Any:
        """The redis-py client: connects the publishing connection, and answers pings."""
        if self._client is None:
            self._client = self._connect()
        return self._client

    async def _close_publishing(self) -> None:
        publishing, self._publishing = self._publishing, None
        if publishing is not None:
            with contextlib.suppress(Exception):
                await publishing.close()

    async def ping(self) -> bool:
        """Whether Redis answers a PING within the timeout."""
        try:
            await asyncio.wait_for(self.client().ping(), self._timeout_s)
        except Exception:
            return False
        return True

    def _failed(self) -> None:
        if self._paused_until <= time.monotonic():
            self._paused_until = time.monotonic() + PUBLISH_PAUSE_S
        if not self._failing:
            self._failing = True
            log.warning(
                "redis: cannot publish; other instances miss events until it heals "
                "(clients fill the gap by replay)"
            )

    def works(self) -> None:
        """Publishing works (a publish or a probe got through): publish again at once."""
        self._paused_until = 0.0
        if self._failing:
            self._failing = False
            log.info("redis: publishing again")

    @property
    def failing(self) -> bool:
        """Whether the last publish failed (and no publish or probe got through since)."""
        return self._failing

    def _drop(self, rooms: Iterable[str]) -> None:
        self.dropped += 1
        if len(self._dropped_rooms) < MAX_DROPPED_ROOMS:
            self._dropped_rooms.update(rooms)

    def remember_dropped(self, rooms: Iterable[str]) -> None:
        self._dropped_rooms.update(rooms)

    def take_dropped_rooms(self) -> set[str]:
        rooms, self._dropped_rooms = self._dropped_rooms, set()
        return rooms

    async def close(self) -> None:
        """Publish what is queued (for up to :data:`FLUSH_TIMEOUT_S`), stop the sender and
        close the connection; later messages are dropped."""
        self._closed = True
        sender, self._sender = self._sender, None
        if sender is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), FLUSH_TIMEOUT_S)
            await stop_task(sender)
        await self._close_publishing()
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.aclose()


__all__ = ["RedisOutbox"]
