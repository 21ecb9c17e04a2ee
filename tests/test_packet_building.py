"""What every packet the server sends goes through: the binary test of the server's packet
class (python-socketio's rule, walked without recursion) and the time format of every
record and event on the wire (UTC, taken without a conversion when it is already UTC)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from socketio.packet import Packet

from jobspine_shared.wire import format_time
from server.realtime.packets import ServerPacket

DATA: list[object] = [
    None,
    "text",
    b"raw",
    bytearray(b"raw"),
    ["job:progress", {"job_id": "j", "data": {"progress": 1.5, "step": None}}],
    ["blob", {"nested": [{"deeper": [1, 2, b"\x00"]}]}],
    ["tuple", {"inside": (b"\x00",)}],  # tuples are not looked into
    [{"ok": True, "job": {"id": "j", "tags": []}}],
    {"key": b"value"},
    [[], {}, [[[]]]],
]


@pytest.mark.parametrize("data", DATA)
def test_the_server_packet_finds_binary_data_as_python_socketio_does(data: object) -> None:
    assert ServerPacket.data_is_binary(data) is Packet.data_is_binary(data)


@pytest.mark.parametrize(
    "value",
    [
        datetime(2026, 12, 7, 22, 0, 0, 123456, tzinfo=UTC),
        datetime(2026, 12, 7, 22, 0, 0, tzinfo=UTC),  # no fraction: none is written
        datetime(2026, 12, 7, 23, 30, 0, 5, tzinfo=timezone(timedelta(hours=1, minutes=30))),
        datetime(2026, 12, 7, 22, 0, 0, 7, tzinfo=ZoneInfo("UTC")),
        datetime(2026, 6, 1, 2, 0, 0, tzinfo=ZoneInfo("Europe/Paris")),
    ],
)
def test_times_go_out_in_utc_with_a_z(value: datetime) -> None:
    assert format_time(value) == value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        format_time(datetime(2026, 12, 7, 22, 0, 0))
