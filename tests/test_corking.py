"""Websocket frames written to a client in one turn of the loop go out in one write
(``server/realtime/corking.py``), in order, and a control frame is never held back."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from server.keys import SIO
from server.realtime import corking
from server.realtime.backpressure import _WEBSOCKET_ATTRIBUTE
from server.realtime.corking import CorkedTransport, writelines_pauses
from tests.support.server import TIMEOUT_S, StartServer, connect_user

TEXT = b"\x81\x05hello"  # a text frame: FIN, opcode 1
CLOSE = b"\x88\x02\x03\xe8"  # a close frame: FIN, opcode 8, code 1000


class Recording:
    """A transport that records what it is given."""

    def __init__(self, closing: bool = False) -> None:
        self.writes: list[list[bytes]] = []
        self.closing = closing

    def write(self, data: bytes) -> None:
        self.writes.append([bytes(data)])

    def writelines(self, lines: list[bytes]) -> None:
        self.writes.append([bytes(line) for line in lines])

    def is_closing(self) -> bool:
        return self.closing


def corked(transport: Recording) -> CorkedTransport:
    return CorkedTransport(transport, asyncio.get_running_loop())  # type: ignore[arg-type]


def batching(monkeypatch: pytest.MonkeyPatch, *, pauses: bool) -> tuple[Recording, CorkedTransport]:
    """A recorded transport and its cork, as on a Python whose ``writelines`` does (3.11,
    3.12.9+) or does not (3.12.0-3.12.8, 3.13.0-3.13.1) pause the protocol."""
    monkeypatch.setattr(corking, "WRITELINES_PAUSES", pauses)
    transport = Recording()
    return transport, corked(transport)


async def next_turn() -> None:
    await asyncio.sleep(0)
    await asyncio.sleep(0)


async def test_data_frames_of_one_turn_are_written_together_at_the_next(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    transport, cork = batching(monkeypatch, pauses=True)
    for _ in range(3):
        cork.write(TEXT)
    assert transport.writes == []
    await next_turn()
    assert transport.writes == [[TEXT, TEXT, TEXT]]
    cork.write(TEXT)
    await next_turn()
    assert transport.writes[-1] == [TEXT]


async def test_a_control_frame_flushes_what_is_pending_and_goes_at_once() -> None:
    transport = Recording()
    cork = corked(transport)
    cork.write(TEXT + b"1")
    cork.write(CLOSE)
    assert transport.writes == [[TEXT + b"1"], [CLOSE]]
    await next_turn()
    assert len(transport.writes) == 2


async def test_where_writelines_does_not_pause_a_batch_is_one_joined_write(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # (Python 3.12.0-3.12.8, 3.13.0-3.13.1: asyncio's writelines skips pause_writing, so a
    # client that stops reading would never hold the writer back nor fill its send queue.)
    transport, cork = batching(monkeypatch, pauses=False)
    cork.write(TEXT)
    cork.write(TEXT + b"1")
    await next_turn()
    assert transport.writes == [[TEXT + TEXT + b"1"]]


async def test_writelines_joins_the_pending_frames_in_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    transport, cork = batching(monkeypatch, pauses=True)
    cork.write(TEXT + b"1")
    cork.writelines([TEXT + b"2", TEXT + b"3"])
    cork.writelines([CLOSE])
    assert transport.writes == [[TEXT + b"1", TEXT + b"2", TEXT + b"3"], [CLOSE]]


def test_the_python_versions_whose_writelines_does_not_pause() -> None:
    affected = [(3, 12, 0), (3, 12, 8), (3, 13, 0), (3, 13, 1)]
    fine = [(3, 11, 7), (3, 12, 9), (3, 12, 10), (3, 13, 2), (3, 14, 0)]
    assert [writelines_pauses(v) for v in affected] == [False] * len(affected)
    assert [writelines_pauses(v) for v in fine] == [True] * len(fine)


def test_writelines_pauses_says_what_this_pythons_asyncio_does() -> None:
    paused: list[bool] = []

    class Unread(asyncio.Protocol):
        def pause_writing(self) -> None:
            paused.append(True)

    async def write_past_the_high_water_mark() -> None:
        ours, theirs = socket.socketpair()  # ``theirs`` is never read
        transport, _ = await asyncio.get_running_loop().create_connection(Unread, sock=ours)
        try:
            chunk = b"x" * 65_536
            for _ in range(64):  # 4 MiB: more than the socket's and the transport's buffers
                transport.writelines([chunk, chunk])
        finally:
            transport.abort()
            theirs.close()

    with asyncio.Runner(loop_factory=asyncio.SelectorEventLoop) as runner:
        runner.run(write_past_the_high_water_mark())
    assert bool(paused) is corking.WRITELINES_PAUSES


async def test_nothing_is_written_to_a_closing_transport() -> None:
    transport = Recording(closing=True)
    cork = corked(transport)
    cork.write(TEXT)
    await next_turn()
    assert transport.writes == []


async def test_a_live_connection_writes_through_the_cork(start_server: StartServer) -> None:
    # Fails if aiohttp stops creating the websocket writer where corking.cork finds it.
    server = await start_server()
    client = await connect_user(server, "alice")
    sockets = server.app[SIO]
    (eio_socket,) = sockets.server.eio.sockets.values()
    response = getattr(eio_socket, _WEBSOCKET_ATTRIBUTE)._sock
    cork = response._writer.transport
    assert isinstance(cork, CorkedTransport)
    recording: list[int] = []
    real: Any = cork.transport
    real_writelines = real.writelines

    def writelines(lines: list[bytes]) -> None:
        recording.append(len(lines))
        real_writelines(lines)

    real.writelines = writelines
    try:
        sid = next(iter(sockets.server.manager.rooms["/"][None]))
        # Three emits in one turn of the loop: the writer finds the three packets queued.
        await asyncio.gather(
            *(sockets.emit_to_socket("test:corked", {"n": n}, sid, "/") for n in range(3))
        )
        got = await client.events.wait_for(
            lambda events: len([e for e in events if e[0] == "test:corked"]) == 3, TIMEOUT_S
        )
    finally:
        real.writelines = real_writelines
    assert [data["n"] for name, data in got if name == "test:corked"] == [0, 1, 2]
    # (Where writelines does not pause, the three go out as one joined write instead.)
    assert recording == ([3] if corking.WRITELINES_PAUSES else [])
