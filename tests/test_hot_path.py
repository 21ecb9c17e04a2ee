"""The web process's hot path (issue 18, item 3): the packet JSON codec decodes every text
exactly as the standard library does and encodes non-ASCII text unescaped; ``EVENT_LOOP``
picks uvloop when installed and is checked at start."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from socketio import packet as sio_packet

from jobspine_shared.event_loop import event_loop_factory
from jobspine_shared.values import OverlongInteger, parse_json_int
from server.config import load_settings
from server.errors import ConfigError
from server.realtime.packets import PacketJson, ServerPacket, TooDeepPayload
from tests.support.processes import web_process
from tests.support.server import TEST_SECRET, StartServer, connect_user

SECRET_ENV = {"JWT_SECRET": TEST_SECRET}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


def standard(text: str) -> Any:
    return json.loads(text, parse_int=parse_json_int)


def same(left: Any, right: Any) -> bool:
    """Equal, with the types of numbers compared too (1 and 1.0 differ), NaN equal to NaN."""
    if isinstance(left, float) and isinstance(right, float):
        return (math.isnan(left) and math.isnan(right)) or left == right
    if type(left) is not type(right):
        return False
    if isinstance(left, dict):
        return list(left) == list(right) and all(same(left[k], right[k]) for k in left)
    if isinstance(left, list):
        return len(left) == len(right) and all(map(same, left, right))
    if isinstance(left, OverlongInteger):
        return repr(left) == repr(right)
    return bool(left == right)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_decoding_agrees_with_the_standard_library(value: Any) -> None:
    for text in (json.dumps(value), json.dumps(value, ensure_ascii=False)):
        assert same(PacketJson.loads(text), standard(text))


@pytest.mark.parametrize(
    "text",
    [
        '["e",{"n":123456789012345678901234567890}]',  # beyond 64 bits: exact, not a float
        '["e",{"n":-9223372036854775809}]',
        '["e",{"n":18446744073709551615}]',
        '["e",{"n":1e20}]',
        '["e",{"n":' + "9" * 101 + "}]",  # over-long: refused field by field
        '["e",NaN,Infinity]',
        '["e",{"n":1e400}]',
        '["e","\\ud800"]',
        '["e",{"a":1,"a":2}]',
    ],
)
def test_texts_orjson_reads_otherwise_decode_as_before(text: str) -> None:
    assert same(PacketJson.loads(text), standard(text))


def test_too_deep_a_payload_is_still_answered() -> None:
    event, payload = PacketJson.loads('["job:create",' + "[" * 5000 + "]" * 5000 + "]")
    assert event == "job:create"
    assert isinstance(payload, TooDeepPayload)


def test_encoding_keeps_non_ascii_text_and_falls_back_for_what_orjson_refuses() -> None:
    assert PacketJson.dumps(["job:created", {"t": "é😀"}]) == '["job:created",{"t":"é😀"}]'
    assert json.loads(PacketJson.dumps({"n": 2**70})) == {"n": 2**70}
    assert json.loads(PacketJson.dumps(["\ud800"])) == ["\ud800"]  # escaped, as before


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def test_the_server_sends_strict_json_and_a_null_as_orjson_writes_it() -> None:
    # Every number the server sends was checked finite; should a non-finite one slip
    # through, it goes out as orjson writes it (null), never as NaN, which JSON.parse
    # refuses. (And a null, in nearly every packet, costs no walk of the value.)
    encoded = PacketJson.dumps(["job:progress", {"progress": float("nan"), "step": None}])
    assert json.loads(encoded, parse_constant=_no_constant) == [
        "job:progress",
        {"progress": None, "step": None},
    ]


async def test_an_emoji_input_is_sent_back_unescaped(start_server: StartServer) -> None:
    server = await start_server()
    client = await connect_user(server, "alice")
    text = "😀" * 10_000
    job = (await client.ok("job:create", {"type": "t", "input": {"text": text}}))["job"]
    ack = await client.ok("job:subscribe", {"job_id": job["id"]})
    assert ack["job"]["input"] == {"text": text}
    # The ack as the server's packet class puts it on the wire: 4 bytes per emoji, not 12.
    encoded = ServerPacket(sio_packet.ACK, namespace="/", data=[ack], id=1).encode()
    assert "\\ud83d" not in encoded
    assert len(encoded.encode()) < len(text.encode()) + 4096


def test_event_loop_is_checked_at_start() -> None:
    assert load_settings(SECRET_ENV).event_loop == "auto"
    assert load_settings({**SECRET_ENV, "EVENT_LOOP": "ASYNCIO"}).event_loop == "asyncio"
    with pytest.raises(ConfigError, match=r"^EVENT_LOOP: expected one of auto, asyncio, uvloop"):
        load_settings({**SECRET_ENV, "EVENT_LOOP": "trio"})
    assert event_loop_factory("asyncio") is None
    uvloop = pytest.importorskip("uvloop")  # a dev install has it
    assert event_loop_factory("auto") is uvloop.new_event_loop
    assert event_loop_factory("uvloop") is uvloop.new_event_loop


@pytest.mark.slow
@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
async def test_the_web_process_runs_on_the_loop_asked_for(loop: str) -> None:
    pytest.importorskip("uvloop")
    async with web_process(f"web-{loop}", EVENT_LOOP=loop) as web:
        assert f"loop: {loop})" in web.proc.output()
