"""The listener's Redis connection in subscriber mode, read without redis-py's pub/sub layer.

redis-py's ``PubSub.listen`` costs about a quarter of a receiving instance's CPU: per message a
retry wrapper, a timeout context, a push-notification check, a ``logging.getLogger`` call and
a dict. Here redis-py only connects (URL, TLS, AUTH, ``SELECT``, the handshake) and packs the
(un)subscribe commands; the replies are read from the connection's stream in chunks and parsed
by a ``hiredis.Reader`` of our own, every whole reply of a chunk at once.

A reply is ``[kind, channel, data]``: ``kind`` ``b"message"`` (``data`` the message) or
``b"subscribe"`` / ``b"unsubscribe"`` (``data`` the count of channels left). An error reply,
or the connection closing, raises :class:`redis.exceptions.ConnectionError`: the listener then
connects and subscribes again.
"""

from __future__ import annotations

import asyncio
from typing import Any

import hiredis
from redis.exceptions import ConnectionError as RedisConnectionError

#: Bytes read from the socket at most per read.
READ_SIZE = 65_536

Reply = list[Any]


class SubscriberConnection:
    """One subscriber connection: :meth:`subscribe`, :meth:`unsubscribe`, :meth:`replies`."""

    def __init__(self, connection: Any) -> None:
        """``connection``: a new, unconnected ``redis.asyncio.Connection``."""
        self._connection = connection
        self._stream: asyncio.StreamReader | None = None
        self._parser = hiredis.Reader()

    @classmethod
    async def open(cls, client: Any) -> SubscriberConnection:
        """Connect a connection of its own of ``client``'s pool (``client``: a redis-py
        asyncio client)."""
        subscriber = cls(client.connection_pool.make_connection())
        try:
            await subscriber._connection.connect()
        except BaseException:
            await subscriber.close()
            raise
        stream = getattr(subscriber._connection, "_reader", None)
        if not isinstance(stream, asyncio.StreamReader):  # a redis-py of another shape
            await subscriber.close()
            raise RuntimeError("redis: the connection has no stream to read replies from")
        subscriber._stream = stream
        return subscriber

    async def subscribe(self, *channels: str) -> None:
        await self._send("SUBSCRIBE", *channels)

    async def unsubscribe(self, *channels: str) -> None:
        await self._send("UNSUBSCRIBE", *channels)

    async def _send(self, command: str, *channels: str) -> None:
        connection = self._connection
        await connection.send_packed_command(
            connection.pack_command(command, *channels), check_health=False
        )

    async def replies(self) -> list[Reply]:
        """The whole replies of the next chunk read (at least one); raises
        :class:`redis.exceptions.ConnectionError` on an error reply or a closed connection."""
        parser, stream = self._parser, self._stream
        if stream is None:
            raise RedisConnectionError("redis: the subscriber connection is closed")
        replies: list[Reply] = []
        while not replies:
            chunk = await stream.read(READ_SIZE)
            if not chunk:
                raise RedisConnectionError("redis: the subscriber connection was closed")
            parser.feed(chunk)
            reply = parser.gets()
            while reply is not False:
                if isinstance(reply, hiredis.ReplyError):
                    raise RedisConnectionError(f"redis: {reply}")
                if isinstance(reply, list) and len(reply) == 3:
                    replies.append(reply)
                reply = parser.gets()
        return replies

    async def close(self) -> None:
        self._stream = None
        await self._connection.disconnect()


__all__ = ["READ_SIZE", "Reply", "SubscriberConnection"]
