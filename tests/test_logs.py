"""Logs: JSON and text lines with the request/job context, request ids on every answer,
the access line and its switch."""

from __future__ import annotations

import json
import logging
import re
import sys

import pytest

from jobspine_shared.logcontext import (
    JsonFormatter,
    TextFormatter,
    bind,
    current_context,
    log_context,
    own_context,
    parse_log_format,
    parse_log_level,
)
from server.config import load_settings
from server.errors import ConfigError
from server.keys import HTTP_IN_FLIGHT
from server.rest.tracking import request_id_of
from tests.support.jobs import wait_until
from tests.support.server import TEST_SECRET, connect_user, running_server


def _record(msg: str = "hello %s", *args: object, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("boom\nsecond line")
        except ValueError:
            exc_info = sys.exc_info()
    return logging.LogRecord("jobspine.test", logging.ERROR, __file__, 1, msg, args, exc_info)


def test_a_json_line_carries_the_context_and_one_traceback_field() -> None:
    with log_context(request_id="r-1", job_id="j-1", correlation_id="c-1", user_id="u-1"):
        line = JsonFormatter().format(_record("hello %s", "world", exc=True))
    assert "\n" not in line
    data = json.loads(line)
    assert data["msg"] == "hello world"
    assert data["level"] == "ERROR"
    assert data["logger"] == "jobspine.test"
    assert data["ts"].endswith("+00:00")
    assert (data["request_id"], data["job_id"], data["correlation_id"]) == ("r-1", "j-1", "c-1")
    assert data["user_id"] == "u-1"
    assert "worker_id" not in data
    assert "Traceback" in data["exc"]
    assert "boom\nsecond line" in data["exc"]


def test_the_context_ends_with_its_block_and_extra_wins() -> None:
    with log_context(job_id="inside"):
        bind(worker_id="w-1")
        record = _record()
        record.job_id = "explicit"
        data = json.loads(JsonFormatter().format(record))
        assert (data["job_id"], data["worker_id"]) == ("explicit", "w-1")
    assert "job_id" not in json.loads(JsonFormatter().format(_record()))


def test_a_text_line_is_one_line_with_the_context_at_the_end() -> None:
    with log_context(request_id="r-2", job_id="j-2"):
        line = TextFormatter().format(_record(exc=True))
    assert "\n" not in line
    assert "request_id=r-2 job_id=j-2" in line
    assert "Traceback" in line


def test_log_variables_are_checked() -> None:
    assert parse_log_format(None) == "text"
    assert parse_log_format("JSON") == "json"
    assert parse_log_level("debug") == logging.DEBUG
    with pytest.raises(ValueError, match="LOG_FORMAT"):
        parse_log_format("xml")
    with pytest.raises(ValueError, match="LOG_LEVEL"):
        parse_log_level("loud")
    base = {"JWT_SECRET": TEST_SECRET}
    settings = load_settings(
        {**base, "LOG_FORMAT": "json", "LOG_LEVEL": "warning", "ACCESS_LOG": "0"}
    )
    assert (settings.log_format, settings.log_level, settings.access_log) == (
        "json",
        "WARNING",
        False,
    )
    for name, value in (("LOG_FORMAT", "xml"), ("ACCESS_LOG", "maybe"), ("METRICS_PORT", "0")):
        with pytest.raises(ConfigError, match=name):
            load_settings({**base, name: value})


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("abc-123_X.y:z", True),
        ("a" * 128, True),
        ("a" * 129, False),
        ("", False),
        ("has space", False),
        ("naïve", False),
        (None, False),
    ],
)
def test_a_request_id_is_kept_only_when_well_formed(sent: str | None, kept: bool) -> None:
    chosen = request_id_of(sent)
    assert (chosen == sent) is kept
    assert 1 <= len(chosen) <= 128


async def test_every_answer_carries_a_request_id_and_the_access_line_names_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="jobspine.access")
    async with running_server() as server:
        for path, headers in (
            ("/healthz", {"X-Request-ID": "mine-1"}),
            ("/api/jobs", {"X-Request-ID": "bad id"}),  # 401 without a token
            ("/no/such/route", {}),
        ):
            async with server.http.get(server.url + path, headers=headers) as answer:
                rid = answer.headers["X-Request-ID"]
                assert rid == "mine-1" if path == "/healthz" else rid not in ("", "bad id")
    lines = [r for r in caplog.records if r.name == "jobspine.access"]
    assert any(_fmt(r) == "mine-1" and "/healthz 200" in r.getMessage() for r in lines)
    assert any("/api/jobs 401" in r.getMessage() for r in lines)


def _fmt(record: logging.LogRecord) -> str:
    return str(json.loads(JsonFormatter().format(record)).get("request_id", ""))


async def test_access_log_off(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="jobspine.access")
    async with (
        running_server({"ACCESS_LOG": "0"}) as server,
        server.http.get(server.url + "/healthz") as answer,
    ):
        assert answer.status == 200
    assert not [r for r in caplog.records if r.name == "jobspine.access"]


async def test_own_context_ends_what_a_call_binds() -> None:
    @own_context
    async def recover(job_id: str) -> str:
        bind(job_id=job_id)
        return current_context()["job_id"]

    with log_context(worker_id="supervisor"):
        assert await recover("j-1") == "j-1"
        assert dict(current_context()) == {"worker_id": "supervisor"}


async def test_each_socket_call_has_a_request_id_that_a_new_job_takes() -> None:
    async with running_server() as server:
        user = await connect_user(server, "u1")
        first = await user.ok("job:create", {"type": "research"})
        second = await user.ok("job:create", {"type": "research"})
        mine = await user.ok("job:create", {"type": "research", "correlation_id": "trace-7"})
        ids = [first["job"]["correlation_id"], second["job"]["correlation_id"]]
        assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids), ids
        assert ids[0] != ids[1]
        assert mine["job"]["correlation_id"] == "trace-7"

        headers = {"Authorization": f"Bearer {server.token('u1')}", "X-Request-ID": "rest-9"}
        async with server.http.post(
            server.url + "/api/jobs", json={"type": "research"}, headers=headers
        ) as answer:
            assert answer.status == 201
            assert (await answer.json())["correlation_id"] == "rest-9"


async def test_a_websocket_is_in_flight_until_it_ends_and_then_has_its_access_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="jobspine.access")

    async with running_server() as server:
        in_flight = server.app[HTTP_IN_FLIGHT]
        ws = await server.http.ws_connect(
            server.url.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket",
            headers={"X-Request-ID": "ws-1"},
        )
        assert ws._response.headers["X-Request-ID"] == "ws-1"
        assert (await ws.receive_str()).startswith("0")  # Engine.IO's open packet
        assert len(in_flight) == 1
        assert not [r for r in caplog.records if "/socket.io/" in r.getMessage()]
        await ws.close()
        await wait_until(lambda: _settled(len(in_flight) == 0))
    lines = [r for r in caplog.records if r.name == "jobspine.access"]
    upgraded = [r for r in lines if r.getMessage().startswith("GET /socket.io/ 101 ")]
    assert [_fmt(r) for r in upgraded] == ["ws-1"]


async def _settled(value: bool) -> bool:
    return value
