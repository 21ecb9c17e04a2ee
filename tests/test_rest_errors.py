"""The REST API on a real port, its refusals: malformed ids and parameters, the error envelope
for everything that can go wrong, CORS, unexpected exceptions without a trace, and values no
store or client can hold."""

from __future__ import annotations

import uuid

import pytest

from tests.support.faults import break_repository, secret_logged
from tests.support.rest import JOB_ROUTES, assert_envelope, create_via_rest
from tests.support.server import LiveServer, StartServer


@pytest.mark.parametrize(("method", "suffix"), JOB_ROUTES)
@pytest.mark.parametrize("job_id", ["nope", "123", str(uuid.uuid4()).upper(), str(uuid.uuid4())])
async def test_malformed_or_unknown_ids_in_paths_are_not_found(
    start_server: StartServer, method: str, suffix: str, job_id: str
) -> None:
    server = await start_server()
    status, body = await server.rest(
        method, f"/api/jobs/{job_id}{suffix}", token=server.token("u1")
    )
    assert status == 404
    assert_envelope(body, "not_found")


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [
        ("limit=x", 422, "validation_error"),
        ("limit=1.5", 422, "validation_error"),
        ("limit=0", 422, "validation_error"),
        ("limit=-3", 422, "validation_error"),
        ("limit=100000", 422, "validation_error"),
        ("cursor=!!!", 422, "validation_error"),
        ("cursor=bm90LWEtY3Vyc29y", 422, "validation_error"),
        ("state=done", 422, "validation_error"),
        ("type=Not%20A%20Type", 422, "validation_error"),
    ],
)
async def test_bad_list_parameters_are_refused(
    start_server: StartServer, query: str, status: int, code: str
) -> None:
    server = await start_server()
    got, body = await server.rest("GET", f"/api/jobs?{query}", token=server.token("u1"))
    assert got == status
    assert_envelope(body, code)


async def test_bad_after_seq_is_a_validation_error(start_server: StartServer) -> None:
    server = await start_server()
    token = server.token("u1")
    job = await create_via_rest(server, token)
    for value in ["x", "-1", "1.5"]:
        status, body = await server.rest(
            "GET", f"/api/jobs/{job['id']}/events?after_seq={value}", token=token
        )
        assert status == 422
        assert assert_envelope(body, "validation_error")["details"] == {"field": "after_seq"}


async def test_the_error_envelope_covers_everything(start_server: StartServer) -> None:
    server = await start_server({"MAX_CHECKPOINT_BYTES": "1024"})
    token = server.token("u1")

    status, body = await server.rest("GET", "/api/nothing-here", token=token)
    assert status == 404
    assert assert_envelope(body, "not_found")
    status, body = await server.rest("GET", "/")
    assert status == 404
    assert assert_envelope(body, "not_found")

    status, body = await server.rest("DELETE", "/api/jobs", token=token)
    assert status == 405
    assert assert_envelope(body, "method_not_allowed")
    status, body = await server.rest("PUT", f"/api/jobs/{uuid.uuid4()}/pause", token=token)
    assert status == 405
    assert assert_envelope(body, "method_not_allowed")

    for raw in [b"{not json", b"\xff\xfe", b'{"type": NaN}', b""]:
        status, body = await server.rest("POST", "/api/jobs", token=token, data=raw)
        assert status == 400, raw
        assert_envelope(body, "bad_request")

    for value in [b"[1, 2]", b'"text"', b"3", b"null"]:
        status, body = await server.rest("POST", "/api/jobs", token=token, data=value)
        assert status == 422, value
        assert_envelope(body, "validation_error")

    status, body = await server.rest("POST", "/api/jobs", token=token, json={"type": "Bad!"})
    assert status == 422
    assert assert_envelope(body, "validation_error")["details"] == {"field": "type"}

    limit = server.settings.max_message_bytes
    big = {"type": "t", "input": {"blob": "x" * (limit + 1)}}
    status, body = await server.rest("POST", "/api/jobs", token=token, json=big)
    assert status == 413
    assert assert_envelope(body, "payload_too_large")

    job = await create_via_rest(server, token)
    status, body = await server.rest(
        "POST", f"/api/jobs/{job['id']}/restart", token=token, data=b"[oops"
    )
    assert status == 400
    assert assert_envelope(body, "bad_request")
    status, body = await server.rest("GET", "/healthz")
    assert (status, body) == (200, {"status": "ok"})


async def test_any_origin_may_call_the_api(live_server: LiveServer) -> None:
    status, _ = await live_server.rest(
        "OPTIONS",
        "/api/jobs",
        headers={
            "Origin": "app://desktop",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert status == 204
    async with live_server.http.get(
        live_server.url + "/api/jobs", headers={"Origin": "app://desktop"}
    ) as response:
        assert response.status == 401
        assert response.headers["Access-Control-Allow-Origin"] == "*"
    async with live_server.http.options(
        live_server.url + "/api/jobs",
        headers={"Origin": "app://desktop", "Access-Control-Request-Method": "POST"},
    ) as response:
        assert "Authorization" in response.headers["Access-Control-Allow-Headers"]


async def test_unexpected_exceptions_are_500_without_a_trace(
    live_server: LiveServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    break_repository(monkeypatch, live_server, "get_stats")
    status, body = await live_server.rest("GET", "/api/stats", token=live_server.token())
    assert status == 500
    error = assert_envelope(body, "internal_error")
    assert "secret" not in error["message"]
    assert secret_logged(caplog)


OVERLONG_INTEGER = "1" * 101


@pytest.mark.parametrize(
    "raw",
    [
        b'{"type": "t", "input": {"text": "a\\u0000b"}}',
        b'{"type": "t", "input": {"a\\u0000": 1}}',
        b'{"type": "t", "input": {"text": "\\ud800"}}',
        b'{"type": "t", "input": {"n": ' + OVERLONG_INTEGER.encode() + b"}}",
        b'{"type": "t", "input": {"n": [1, -1e300]}}',
    ],
    ids=["nul-in-value", "nul-in-key", "lone-surrogate", "overlong-integer", "huge-float"],
)
async def test_input_no_store_or_client_can_hold_is_a_validation_error(
    live_server: LiveServer, raw: bytes
) -> None:
    token = live_server.token("u1")
    status, body = await live_server.rest("POST", "/api/jobs", token=token, data=raw)
    assert status == 422, body
    assert assert_envelope(body, "validation_error")["details"] == {"field": "input"}
    status, page = await live_server.rest("GET", "/api/jobs", token=token)
    assert (status, page["items"]) == (200, [])


async def test_an_escaped_backslash_before_u0000_is_ordinary_text(
    live_server: LiveServer,
) -> None:
    raw = b'{"type": "t", "input": {"text": "\\\\u0000"}}'
    status, job = await live_server.rest(
        "POST", "/api/jobs", token=live_server.token("u1"), data=raw
    )
    assert status == 201, job
    assert job["input"] == {"text": "\\u0000"}


async def test_unstorable_text_in_a_filter_or_a_token_is_refused(live_server: LiveServer) -> None:
    admin = live_server.token("root", "admin")
    status, body = await live_server.rest("GET", "/api/jobs?user_id=a%00b", token=admin)
    assert status == 422, body
    assert assert_envelope(body, "validation_error")["details"] == {"field": "user_id"}
    nul_subject = live_server.raw_token({"sub": "u\x001", "exp": 2**40})
    status, body = await live_server.rest("GET", "/api/jobs", token=nul_subject)
    assert status == 401, body
    assert_envelope(body, "unauthorized")


async def test_a_body_that_does_not_match_its_content_encoding_is_a_bad_request(
    live_server: LiveServer,
) -> None:
    status, body = await live_server.rest(
        "POST",
        "/api/jobs",
        token=live_server.token("u1"),
        data=b'{"type": "t"}',
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert status == 400, body
    assert_envelope(body, "bad_request")


async def test_values_nested_too_deep_are_refused(live_server: LiveServer) -> None:
    token = live_server.token("u1")
    for depth, status_code, code in [(150, 422, "validation_error"), (5000, 400, "bad_request")]:
        raw = '{"type": "t", "input": ' + '{"a":' * depth + "{}" + "}" * depth + "}"
        status, body = await live_server.rest("POST", "/api/jobs", token=token, data=raw)
        assert status == status_code, body
        assert_envelope(body, code)
    status, page = await live_server.rest("GET", "/api/jobs", token=token)
    assert (status, page["items"]) == (200, [])
