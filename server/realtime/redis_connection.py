"""A Redis connection for the hot paths, written and read without redis-py's command layer.

redis-py's ``PubSub.listen`` cost about a quarter of a receiving instance's CPU (per message a
retry wrapper, a timeout context, a push-notification check, a ``logging.getLogger`` call and
a dict), and its pipeline a tenth of a publishing one. Here redis-py only connects (URL, TLS,
AUTH, ``SELECT``, the handshake); commands are packed here in RESP and written at once, and
replies are read from the connection's stream in chunks and parsed by a ``hiredis.Reader`` of
our own, every whole reply of a chunk at once (:class:`ReplyParser`).

Used by the listener (subscriber mode: a reply is ``[kind, channel, data]``) and by the
outbox (``PUBLISH``, many per write). The stream and writer are redis-py's connection's own
(``_reader`` and ``_writer`` of its asyncio connection, checked with redis-py 8.2); one without
them makes :meth:`RedisConnection.open` fail, so the listener never subscribes and
``/readyz`` says so (``tests/test_redis_connection.py`` checks the shape).

An error reply or the connection closing raises :class:`redis.exceptions.ConnectionError`;
after any error the owner closes the connection and opens a new one.
"""

from __future__ import annotations

import asyncio
from typing import Any

import hiredis
from redis.exceptions import ConnectionError as RedisConnectionError

#: Bytes read from the socket at most per read.
READ_SIZE = 65_536
#: Bytes of a chunk handed to hiredis per ``feed`` (see :class:`ReplyParser`).
FEED_SIZE = 4_096

Reply = Any


class RedisConnection:
    """One connection: :meth:`send` commands, read :meth:`replies` or :meth:`read` some."""

    def __init__(self, connection: Any) -> None:
        """``connection``: a new, unconnected ``redis.asyncio.Connection``."""
        self._connection = connection
        self._stream: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._parser = ReplyParser()

    @classmethod
    async def open(cls, client: Any) -> RedisConnection:
        """Connect a connection of its own made by ``client``'s pool (``client``: a redis-py
        asyncio client)."""
        opened = cls(client.connection_pool.make_connection())
        try:
            await opened._connection.connect()
            stream = getattr(opened._connection, "_reader", None)
            writer = getattr(opened._connection, "_writer", None)
            if not isinstance(stream, asyncio.StreamReader) or writer is None:
                raise RuntimeError("redis: the connection has no stream to read and write")
        except BaseException:
            await opened.close()
            raise
        opened._stream, opened._writer = stream, writer
        return opened

    async def send(self, *commands: tuple[bytes | str, ...]) -> None:
        """Write ``commands`` (each its arguments) in one write and wait until the transport
        took them."""
        writer = self._writer
        if writer is None:
            raise RedisConnectionError("redis: the connection is closed")
        writer.write(b"".join(pack(command) for command in commands))
        await writer.drain()

    async def replies(self) -> list[Reply]:
        """The whole replies of the next chunk read (at least one)."""
        replies: list[Reply] = []
        while not replies:
            await self._read_chunk(replies)
        return replies

    async def read(self, count: int) -> list[Reply]:
        """The next ``count`` replies."""
        replies: list[Reply] = []
        while len(replies) < count:
            await self._read_chunk(replies)
        if len(replies) > count:  # a reply nobody asked for: the connection is out of step
            raise RedisConnectionError("redis: more replies than commands")
        return replies

    async def _read_chunk(self, replies: list[Reply]) -> None:
        stream = self._stream
        if stream is None:
            raise RedisConnectionError("redis: the connection is closed")
        chunk = await stream.read(READ_SIZE)
        if not chunk:
            raise RedisConnectionError("redis: the connection was closed")
        self._parser.parse(chunk, replies)

    async def close(self) -> None:
        self._stream = self._writer = None
        await self._connection.disconnect()


class ReplyParser:
    """The whole replies in the bytes read so far, a chunk at a time.

    hiredis' reader moves what is left of its buffer to the front after every reply once
    1 KB of the buffer was read (``sdsrange`` in ``redisReaderGetReply``), so a 64 KB chunk
    of 400-byte pub/sub messages fed at once moved about 32 KB per message (callgrind: 9% of
    a receiving instance's instructions when its chunks were large). Fed ``FEED_SIZE`` bytes
    at a time, with the replies of each piece taken before the next, it moves at most a
    piece per reply, for a ``feed`` call per piece. A reply may span pieces and chunks.
    """

    def __init__(self) -> None:
        self._reader = hiredis.Reader()

    def parse(self, chunk: bytes, replies: list[Reply]) -> None:
        """Append the replies ``chunk`` completes to ``replies``, in order; an error reply
        raises :class:`redis.exceptions.ConnectionError` (the replies before it are in
        ``replies``)."""
        size = len(chunk)
        if size <= FEED_SIZE:
            self._reader.feed(chunk)
            self._take(replies)
            return
        for start in range(0, size, FEED_SIZE):
            self._reader.feed(chunk, start, min(FEED_SIZE, size - start))
            self._take(replies)

    def _take(self, replies: list[Reply]) -> None:
        gets = self._reader.gets
        reply = gets()
        while reply is not False:
            if isinstance(reply, hiredis.ReplyError):
                raise RedisConnectionError(f"redis: {reply}")
            replies.append(reply)
            reply = gets()


def pack(command: tuple[bytes | str, ...]) -> bytes:
    """One command in RESP: an array of bulk strings (a ``str`` in UTF-8). hiredis packs it
    in C: half the CPU of building it here (0.55 against 1.19 us for a ``PUBLISH`` of 400
    bytes, ``timeit``), paid twice per event by the publishing instance."""
    packed: bytes = hiredis.pack_command(command)  # type: ignore[arg-type]  # any length
    return packed


__all__ = ["FEED_SIZE", "READ_SIZE", "RedisConnection", "Reply", "ReplyParser", "pack"]
