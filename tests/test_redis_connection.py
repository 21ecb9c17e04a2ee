"""The Redis connection of the hot paths (``server/realtime/redis_connection.py``) on the shared
test Redis: commands packed here reach Redis byte for byte and in order, a subscriber reads
every message of a chunk, and an error reply or a closed connection raises the error the
listener and the outbox reconnect on. The outbox's batches and a probe share its one
publishing connection without mixing their replies."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from server.realtime.redis_connection import RedisConnection, pack
from server.realtime.redis_outbox import RedisOutbox

pytestmark = pytest.mark.redis

AWKWARD = b"\r\n$3\r\n*1\r\n\x00\xff" + bytes(range(256))  # RESP framing inside the data


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


def test_a_command_is_an_array_of_bulk_strings() -> None:
    assert pack((b"PUBLISH", "c", b"")) == b"*3\r\n$7\r\nPUBLISH\r\n$1\r\nc\r\n$0\r\n\r\n"
    assert pack(("SUBSCRIBE", "é")) == b"*2\r\n$9\r\nSUBSCRIBE\r\n$2\r\n\xc3\xa9\r\n"


async def test_published_messages_arrive_in_order_and_byte_for_byte(
    client: Redis, redis_channel: str
) -> None:
    listening = await RedisConnection.open(client)
    publishing = await RedisConnection.open(client)
    try:
        await listening.send((b"SUBSCRIBE", redis_channel))
        assert await listening.replies() == [[b"subscribe", redis_channel.encode(), 1]]
        messages = [b"first", AWKWARD, b"x" * 200_000, b""]  # one beyond a read's size
        await publishing.send(*((b"PUBLISH", redis_channel, m) for m in messages))
        assert await publishing.read(len(messages)) == [1] * len(messages)
        heard: list[object] = []
        while len(heard) < len(messages):
            heard.extend(await listening.replies())
        assert heard == [[b"message", redis_channel.encode(), m] for m in messages]
    finally:
        await listening.close()
        await publishing.close()


async def test_an_error_reply_raises_a_connection_error(client: Redis) -> None:
    connection = await RedisConnection.open(client)
    try:
        await connection.send((b"NO-SUCH-COMMAND",))
        with pytest.raises(RedisConnectionError, match="unknown command"):
            await connection.read(1)
    finally:
        await connection.close()


async def test_a_connection_the_server_closed_raises_a_connection_error(client: Redis) -> None:
    connection = await RedisConnection.open(client)
    try:
        await connection.send((b"QUIT",))
        assert await connection.read(1) == [b"OK"]
        with pytest.raises(RedisConnectionError, match="closed"):
            await connection.replies()
    finally:
        await connection.close()
    with pytest.raises(RedisConnectionError, match="closed"):
        await connection.send((b"PING",))


async def test_concurrent_batches_of_the_outbox_each_go_out_whole(
    client: Redis, redis_url: str, redis_channel: str
) -> None:
    listening = await RedisConnection.open(client)
    outbox = RedisOutbox(lambda: Redis.from_url(redis_url), timeout_s=5.0)
    try:
        await listening.send((b"SUBSCRIBE", redis_channel))
        await listening.replies()
        assert await outbox.send([(redis_channel, b"opens the connection")])
        await listening.replies()
        batches = [[(redis_channel, b"%d-%d" % (b, m)) for m in range(50)] for b in range(4)]
        assert await asyncio.gather(*(outbox.send(batch) for batch in batches)) == [True] * 4
        heard: list[bytes] = []
        while len(heard) < 200:
            heard.extend(reply[2] for reply in await listening.replies())
        for batch in batches:  # each batch in its order (batches in any order)
            sent = [message for _, message in batch]
            assert [message for message in heard if message in sent] == sent
    finally:
        await outbox.close()
        await listening.close()
