"""The reply parser of the Redis hot paths (``ReplyParser`` in
``server/realtime/redis_connection.py``): a chunk is handed to hiredis a piece at a time,
so every reply of a chunk larger than a piece must still come out whole and in order,
whichever piece or chunk boundary it straddles, and an error reply still raises."""

from __future__ import annotations

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from server.realtime.redis_connection import FEED_SIZE, READ_SIZE, Reply, ReplyParser, pack


def message(channel: bytes, data: bytes) -> bytes:
    """A pub/sub message as Redis sends it (an array of three bulk strings)."""
    return pack((b"message", channel, data))


def published(count: int) -> tuple[bytes, list[Reply]]:
    """``count`` messages of sizes that put their ends at many offsets within a piece, and
    one several pieces long; their bytes and the replies they are."""
    datas = [bytes([n % 251]) * (n * 37 % 1_500) for n in range(count)]
    datas.insert(count // 2, b"\r\n$3\r\n" * (3 * FEED_SIZE))  # framing inside, pieces long
    replies: list[Reply] = [[b"message", b"jobspine:room:/:job:1", d] for d in datas]
    return b"".join(message(b"jobspine:room:/:job:1", d) for d in datas), replies


def parse_in_chunks(data: bytes, chunk_size: int) -> list[Reply]:
    parser, replies = ReplyParser(), list[Reply]()
    for start in range(0, len(data), chunk_size):
        parser.parse(data[start : start + chunk_size], replies)
    return replies


@pytest.mark.parametrize("chunk_size", [READ_SIZE, FEED_SIZE + 1, FEED_SIZE, 1_000, 7])
def test_every_reply_of_a_chunk_comes_out_whole_and_in_order(chunk_size: int) -> None:
    data, expected = published(300)
    assert len(data) > 2 * READ_SIZE  # some chunks are full reads
    assert parse_in_chunks(data, chunk_size) == expected


def test_a_reply_split_at_each_offset_of_a_piece_comes_out_once() -> None:
    data, expected = published(3)
    for split in range(FEED_SIZE - 3, FEED_SIZE + 3):
        parser, replies = ReplyParser(), list[Reply]()
        parser.parse(data[:split], replies)
        parser.parse(data[split:], replies)
        assert replies == expected


def test_an_error_reply_raises_after_the_replies_before_it() -> None:
    before = message(b"c", b"x" * (2 * FEED_SIZE))
    parser, replies = ReplyParser(), list[Reply]()
    with pytest.raises(RedisConnectionError, match="WRONGTYPE"):
        parser.parse(before + b"-WRONGTYPE no\r\n" + message(b"c", b"after"), replies)
    assert replies == [[b"message", b"c", b"x" * (2 * FEED_SIZE)]]
