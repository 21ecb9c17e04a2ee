"""The shared packet codec (``jobspine_shared.packet_json``) as the worker SDK and the Python
client use it: every value encodes to text the standard library decodes to the value
``json.dumps`` would have sent, what ``json.dumps`` refuses is refused as before, and every text
decodes exactly as python-socketio's default parser (``json.loads``) decodes it."""

from __future__ import annotations

import dataclasses
import datetime
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from socketio import packet as sio_packet

from jobspine_client.socket_session import ClientPacket, default_socket
from jobspine_shared.packet_json import PacketJson

#: JSON values with numbers of every kind the standard library writes: beyond 64 bits, NaN
#: and infinities (which orjson would write as ``null``).
packet_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats()
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4)
        | st.tuples(children, children)
        | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


def canonical(value: Any) -> str:
    """The standard library's text of a value: equal for equal values of the same types (1
    and 1.0 differ, NaN equals NaN, key order counts)."""
    return json.dumps(value)


@settings(max_examples=300, deadline=None)
@given(packet_values)
def test_encoding_sends_the_value_the_standard_library_sends(value: Any) -> None:
    sent = PacketJson.dumps(value, separators=(",", ":"))
    before = json.dumps(value, separators=(",", ":"))
    assert canonical(json.loads(sent)) == canonical(json.loads(before))


@settings(max_examples=300, deadline=None)
@given(packet_values)
def test_decoding_agrees_with_the_standard_library(value: Any) -> None:
    for text in (json.dumps(value), json.dumps(value, ensure_ascii=False)):
        assert canonical(PacketJson.loads(text)) == canonical(json.loads(text))


@pytest.mark.parametrize(
    "text",
    [
        '["e",{"n":123456789012345678901234567890}]',
        '["e",{"n":' + "9" * 200 + "}]",  # a client has no over-long integer rule: an int
        '["e",NaN,-Infinity]',
        '["e",{"n":1e400}]',
        '["e","\\ud800"]',
    ],
)
def test_texts_orjson_reads_otherwise_decode_as_the_standard_library(text: str) -> None:
    assert canonical(PacketJson.loads(text)) == canonical(json.loads(text))


def test_non_finite_floats_are_written_as_the_standard_library_writes_them() -> None:
    assert PacketJson.dumps([1.5, float("nan"), None]) == "[1.5, NaN, null]"
    assert PacketJson.dumps({"p": float("-inf")}, separators=(",", ":")) == '{"p":-Infinity}'
    assert PacketJson.dumps(["null", None]) == '["null",null]'  # a null alone is orjson's


@dataclasses.dataclass
class Point:
    x: int


@pytest.mark.parametrize(
    "value", [{"at": datetime.datetime(2026, 12, 7)}, [datetime.date(2026, 12, 7)], [Point(1)]]
)
def test_what_the_standard_library_refuses_is_refused_as_before(value: Any) -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        PacketJson.dumps(value)


def test_the_sessions_sockets_encode_and_decode_packets_with_the_codec() -> None:
    assert default_socket().packet_class is ClientPacket
    data = ["progress", {"step": "é", "progress": 50.0}]
    encoded = ClientPacket(sio_packet.EVENT, data=data, namespace="/workers", id=7).encode()
    assert encoded.endswith('["progress",{"step":"é","progress":50.0}]')
    assert ClientPacket(encoded_packet=encoded).data == data


def test_the_sessions_sockets_refuse_binary_data_instead_of_sending_a_binary_packet() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        ClientPacket(sio_packet.EVENT, data=["e", {"b": b"\x00"}], namespace="/workers").encode()
