"""The REST API on a real port: every route, the error envelope for everything that can go
wrong, health, readiness, metrics, and store outages."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlsplit

import pytest

from jobspine_shared.states import JobState
from server.errors import Unavailable
from server.keys import READINESS_CHECKS, ReadinessCheck
from server.store.memory import MemoryJobStore
from server.store.model import (
    ChangeResult,
    ClaimResult,
    EventSpec,
    JobChange,
    JobFilter,
    Page,
    PageCursor,
    StoredJob,
    StreamRead,
)
from tests.support.server import (
    TEST_BACKLOG,
    LiveServer,
    StartServer,
    connect_user,
    connect_worker,
)

JOB_ROUTES = [
    ("GET", ""),
    ("GET", "/events"),
    ("POST", "/pause"),
    ("POST", "/resume"),
    ("POST", "/cancel"),
    ("POST", "/restart"),
    ("GET", "/recovery"),
    ("GET", "/checkpoint"),
    ("GET", "/audit"),
]


def _assert_envelope(body: Any, code: str) -> dict[str, Any]:
    assert isinstance(body, dict), body
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert error["code"] == code, body
    assert set(error) <= {"code", "message", "details"}
    assert isinstance(error["message"], str)
    assert "Traceback" not in error["message"]
    return error


async def _create(server: LiveServer, token: str, type: str = "research", **input: Any) -> Any:
    status, job = await server.rest(
        "POST", "/api/jobs", token=token, json={"type": type, "input": input}
    )
    assert status == 201, job
    return job


async def test_create_and_read_bare_snapshots(live_server: LiveServer) -> None:
    token = live_server.token("u1")
    job = await _create(live_server, token, query="x")
    assert job["user_id"] == "u1"
    assert job["state"] == "created"
    assert job["seq"] == 1
    assert job["input"] == {"query": "x"}
    assert job["schema_version"] == 2
    status, same = await live_server.rest("GET", f"/api/jobs/{job['id']}", token=token)
    assert status == 200
    assert same == job
    status, default_input = await live_server.rest(
        "POST", "/api/jobs", token=token, json={"type": "trade"}
    )
    assert status == 201
    assert default_input["input"] == {}


async def test_listing_is_newest_first_with_cursor_pagination_and_filters(
    live_server: LiveServer,
) -> None:
    u1, u2 = live_server.token("u1"), live_server.token("u2")
    created = [
        (await _create(live_server, u1, "research" if i % 2 else "trade"))["id"] for i in range(5)
    ]
    theirs = await _create(live_server, u2)
    pages: list[str] = []
    cursor: str | None = None
    while True:
        path = "/api/jobs?limit=2" + (f"&cursor={cursor}" if cursor else "")
        status, page = await live_server.rest("GET", path, token=u1)
        assert status == 200
        assert set(page) == {"items", "next_cursor"}
        pages += [j["id"] for j in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == list(reversed(created))

    status, research = await live_server.rest("GET", "/api/jobs?type=research", token=u1)
    assert [j["id"] for j in research["items"]] == [created[3], created[1]]
    await live_server.rest("POST", f"/api/jobs/{created[0]}/cancel", token=u1)
    status, cancelled = await live_server.rest("GET", "/api/jobs?state=cancelled", token=u1)
    assert [j["id"] for j in cancelled["items"]] == [created[0]]

    # A user's user_id filter cannot widen the view; an admin's narrows it.
    status, mine = await live_server.rest("GET", "/api/jobs?user_id=u2", token=u1)
    assert theirs["id"] not in [j["id"] for j in mine["items"]]
    admin = live_server.token("root", "admin")
    status, everyone = await live_server.rest("GET", "/api/jobs?limit=50", token=admin)
    assert {j["id"] for j in everyone["items"]} >= {*created, theirs["id"]}
    status, only_u2 = await live_server.rest("GET", "/api/jobs?user_id=u2", token=admin)
    assert [j["id"] for j in only_u2["items"]] == [theirs["id"]]


async def test_steering_endpoints_return_the_job_after_the_change(
    live_server: LiveServer,
) -> None:
    token = live_server.token("u1")
    job_id = (await _create(live_server, token))["id"]
    base = f"/api/jobs/{job_id}"
    status, held = await live_server.rest("POST", f"{base}/pause", token=token)
    assert (status, held["state"]) == (200, "paused")
    status, body = await live_server.rest("POST", f"{base}/pause", token=token)
    error = _assert_envelope(body, "invalid_transition")
    assert status == 409
    assert error["details"]["state"] == "paused"
    status, resumed = await live_server.rest("POST", f"{base}/resume", token=token)
    assert (status, resumed["state"]) == (200, "created")
    status, body = await live_server.rest("POST", f"{base}/restart", token=token)
    assert status == 409
    assert _assert_envelope(body, "invalid_transition")["details"] == {
        "state": "created",
        "action": "restart",
    }
    status, cancelled = await live_server.rest("POST", f"{base}/cancel", token=token)
    assert (status, cancelled["state"]) == (200, "cancelled")
    status, restarted = await live_server.rest(
        "POST", f"{base}/restart", token=token, json={"input": {"v": 2}}
    )
    assert (status, restarted["state"], restarted["input"]) == (200, "created", {"v": 2})
    status, body = await live_server.rest(
        "POST", f"{base}/restart", token=token, json={"input": [1]}
    )
    assert status == 422
    assert _assert_envelope(body, "validation_error")["details"] == {"field": "input"}

    status, audit = await live_server.rest("GET", f"{base}/audit", token=token)
    assert status == 200
    assert set(audit) == {"items"}
    assert [item["action"] for item in audit["items"]] == ["pause", "resume", "cancel", "restart"]
    assert all(set(item) == {"action", "actor", "at", "details"} for item in audit["items"])
    assert {item["actor"] for item in audit["items"]} == {"u1"}


async def test_events_recovery_and_checkpoint(live_server: LiveServer) -> None:
    token = live_server.token("u1")
    job = await _create(live_server, token)
    base = f"/api/jobs/{job['id']}"
    status, body = await live_server.rest("GET", f"{base}/checkpoint", token=token)
    assert status == 404
    assert _assert_envelope(body, "not_found")

    worker = await connect_worker(live_server)
    lease = (await worker.ok("claim", {}))["lease"]
    fenced = {"job_id": job["id"], "lease": lease}
    await worker.ok("checkpoint", {**fenced, "data": {"step": 2, "notes": "é"}, "progress": 40})
    await connect_user(live_server, "u1")

    status, replay = await live_server.rest("GET", f"{base}/events?after_seq=1", token=token)
    assert status == 200
    assert set(replay) == {"events", "recovered", "job"}
    assert replay["recovered"] is True
    assert [e["type"] for e in replay["events"]] == ["job:started", "job:checkpoint"]
    assert replay["job"]["has_checkpoint"] is True
    status, snapshot = await live_server.rest("GET", f"{base}/events", token=token)
    assert snapshot["recovered"] is False
    assert snapshot["events"] == []
    status, other_epoch = await live_server.rest(
        "GET", f"{base}/events?after_seq=1&epoch=nope", token=token
    )
    assert other_epoch["recovered"] is False
    status, current = await live_server.rest(
        "GET", f"{base}/events?after_seq=3&epoch={job['epoch']}", token=token
    )
    assert current["recovered"] is True
    assert current["events"] == []

    status, checkpoint = await live_server.rest("GET", f"{base}/checkpoint", token=token)
    assert status == 200
    assert set(checkpoint) == {"data", "saved_at", "size_bytes", "progress"}
    assert checkpoint["data"] == {"step": 2, "notes": "é"}
    assert checkpoint["progress"] == 40
    assert checkpoint["size_bytes"] == len('{"step":2,"notes":"é"}'.encode())

    status, options = await live_server.rest("GET", f"{base}/recovery", token=token)
    assert status == 200
    assert {
        "resumable",
        "restartable",
        "checkpoint",
        "recovery_attempts",
        "max_recovery_attempts",
    } <= set(options)
    assert set(options["checkpoint"]) == {"present", "size_bytes", "keys", "saved_at", "progress"}
    assert options["checkpoint"]["present"] is True
    assert options["checkpoint"]["keys"] == ["step", "notes"]
    status, body = await live_server.rest(
        "GET", f"{base}/checkpoint", token=live_server.token("u2")
    )
    assert status == 404
    status, _ = await live_server.rest(
        "GET", f"{base}/checkpoint", token=live_server.token("root", "admin")
    )
    assert status == 200


async def test_stats_count_the_callers_jobs_or_all_for_an_admin(live_server: LiveServer) -> None:
    u1, u2 = live_server.token("u1"), live_server.token("u2")
    await _create(live_server, u1)
    paused = await _create(live_server, u1)
    await live_server.rest("POST", f"/api/jobs/{paused['id']}/pause", token=u1)
    await _create(live_server, u2)
    status, mine = await live_server.rest("GET", "/api/stats", token=u1)
    assert status == 200
    assert set(mine) == {"by_state", "total"}
    assert set(mine["by_state"]) == {s.value for s in JobState}
    assert mine["total"] == 2
    assert mine["by_state"]["created"] == 1
    assert mine["by_state"]["paused"] == 1
    status, everyone = await live_server.rest(
        "GET", "/api/stats", token=live_server.token("root", "admin")
    )
    assert everyone["total"] == 3


async def test_other_users_jobs_are_not_found(live_server: LiveServer) -> None:
    job = await _create(live_server, live_server.token("u1"))
    other = live_server.token("u2")
    for method, suffix in JOB_ROUTES:
        status, body = await live_server.rest(method, f"/api/jobs/{job['id']}{suffix}", token=other)
        assert status == 404, (method, suffix)
        _assert_envelope(body, "not_found")


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
    _assert_envelope(body, "not_found")


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
    _assert_envelope(body, code)


async def test_bad_after_seq_is_a_validation_error(start_server: StartServer) -> None:
    server = await start_server()
    token = server.token("u1")
    job = await _create(server, token)
    for value in ["x", "-1", "1.5"]:
        status, body = await server.rest(
            "GET", f"/api/jobs/{job['id']}/events?after_seq={value}", token=token
        )
        assert status == 422
        assert _assert_envelope(body, "validation_error")["details"] == {"field": "after_seq"}


async def test_the_error_envelope_covers_everything(start_server: StartServer) -> None:
    server = await start_server({"MAX_CHECKPOINT_BYTES": "1024"})
    token = server.token("u1")

    status, body = await server.rest("GET", "/api/nothing-here", token=token)
    assert status == 404
    assert _assert_envelope(body, "not_found")
    status, body = await server.rest("GET", "/")
    assert status == 404
    assert _assert_envelope(body, "not_found")

    status, body = await server.rest("DELETE", "/api/jobs", token=token)
    assert status == 405
    assert _assert_envelope(body, "method_not_allowed")
    status, body = await server.rest("PUT", f"/api/jobs/{uuid.uuid4()}/pause", token=token)
    assert status == 405
    assert _assert_envelope(body, "method_not_allowed")

    for raw in [b"{not json", b"\xff\xfe", b'{"type": NaN}', b""]:
        status, body = await server.rest("POST", "/api/jobs", token=token, data=raw)
        assert status == 400, raw
        _assert_envelope(body, "bad_request")

    for value in [b"[1, 2]", b'"text"', b"3", b"null"]:
        status, body = await server.rest("POST", "/api/jobs", token=token, data=value)
        assert status == 422, value
        _assert_envelope(body, "validation_error")

    status, body = await server.rest("POST", "/api/jobs", token=token, json={"type": "Bad!"})
    assert status == 422
    assert _assert_envelope(body, "validation_error")["details"] == {"field": "type"}

    limit = server.settings.max_message_bytes
    big = {"type": "t", "input": {"blob": "x" * (limit + 1)}}
    status, body = await server.rest("POST", "/api/jobs", token=token, json=big)
    assert status == 413
    assert _assert_envelope(body, "payload_too_large")

    job = await _create(server, token)
    status, body = await server.rest(
        "POST", f"/api/jobs/{job['id']}/restart", token=token, data=b"[oops"
    )
    assert status == 400
    assert _assert_envelope(body, "bad_request")
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
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(live_server.repository, "get_stats", broken)
    status, body = await live_server.rest("GET", "/api/stats", token=live_server.token())
    assert status == 500
    error = _assert_envelope(body, "internal_error")
    assert "secret" not in error["message"]
    assert any(r.exc_info and "secret internals" in str(r.exc_info[1]) for r in caplog.records)


async def test_health_readiness_and_metrics(live_server: LiveServer) -> None:
    assert await live_server.rest("GET", "/healthz") == (200, {"status": "ok"})
    status, ready = await live_server.rest("GET", "/readyz")
    assert status == 200
    assert ready["checks"] == ["store"]

    token = live_server.token("u1")
    await _create(live_server, token)
    user = await connect_user(live_server, "u1")
    await connect_worker(live_server)
    await user.refused("job:pause", {"job_id": "x"}, code="validation_error")
    await live_server.rest("GET", "/api/nothing", token=token)

    status, text = await live_server.rest("GET", "/metrics")
    assert status == 200
    assert isinstance(text, str)
    lines = text.splitlines()
    assert 'jobspine_jobs{state="created",type="research"} 1' in lines
    assert 'jobspine_job_transitions_total{from="none",to="created",type="research"} 1' in lines
    assert 'jobspine_sockets_connected{namespace="/"} 1' in lines
    assert 'jobspine_sockets_connected{namespace="/workers"} 1' in lines
    assert 'jobspine_events_emitted_total{type="job:created"} 1' in lines
    assert (
        'jobspine_socket_calls_total{event="job:pause",namespace="/",'
        'outcome="validation_error"} 1' in lines
    )
    assert 'jobspine_http_requests_total{method="POST",route="/api/jobs",status="201"} 1' in lines
    assert "# TYPE jobspine_socket_calls_total counter" in lines
    assert "jobspine_store_up 1" in lines


async def test_readiness_reports_a_failing_check(live_server: LiveServer) -> None:
    async def down() -> None:
        raise ConnectionError("redis is down")

    live_server.app[READINESS_CHECKS].append(ReadinessCheck(name="redis", probe=down))
    status, body = await live_server.rest("GET", "/readyz")
    assert status == 503
    assert _assert_envelope(body, "unavailable")["details"] == {"failed": ["redis"]}
    assert (await live_server.rest("GET", "/healthz"))[0] == 200


class OutageStore(MemoryJobStore):
    """A memory store that can be switched off: then every call raises ``Unavailable``."""

    down = False

    def _check(self) -> None:
        if self.down:
            raise Unavailable()

    async def _apply(self, job_id: str, change: JobChange) -> ChangeResult:
        self._check()
        return await super()._apply(job_id, change)

    async def _insert(self, job: Any, event: EventSpec, idempotency_ttl_s: float) -> ChangeResult:
        self._check()
        return await super()._insert(job, event, idempotency_ttl_s)

    async def _claim(
        self, types: tuple[str, ...], worker_id: str, lease: str, max_running_per_user: int
    ) -> ClaimResult | None:
        self._check()
        return await super()._claim(types, worker_id, lease, max_running_per_user)

    async def heartbeat(self, job_id: str, lease: str) -> bool:
        self._check()
        return await super().heartbeat(job_id, lease)

    async def get(self, job_id: str) -> StoredJob | None:
        self._check()
        return await super().get(job_id)

    async def read_stream(self, job_id: str, after_seq: int) -> StreamRead | None:
        self._check()
        return await super().read_stream(job_id, after_seq)

    async def list_jobs(self, where: JobFilter, *, limit: int, after: PageCursor | None) -> Page:
        self._check()
        return await super().list_jobs(where, limit=limit, after=after)

    async def count_by_state(self, user_id: str | None) -> dict[JobState, int]:
        self._check()
        return await super().count_by_state(user_id)

    async def count_by_state_and_type(self) -> dict[tuple[JobState, str], int]:
        self._check()
        return await super().count_by_state_and_type()

    async def ping(self) -> None:
        self._check()


async def test_a_store_outage_is_unavailable_everywhere_and_passes(
    start_server: StartServer,
) -> None:
    store = OutageStore(backlog_size=TEST_BACKLOG)
    server = await start_server(store=store)
    token = server.token("u1")
    job = await _create(server, token)
    user = await connect_user(server, "u1")
    worker = await connect_worker(server)

    store.down = True
    for method, path in [
        ("GET", "/api/jobs"),
        ("GET", f"/api/jobs/{job['id']}"),
        ("POST", f"/api/jobs/{job['id']}/pause"),
        ("GET", "/api/stats"),
    ]:
        status, body = await server.rest(method, path, token=token)
        assert status == 503, path
        _assert_envelope(body, "unavailable")
    status, body = await server.rest("POST", "/api/jobs", token=token, json={"type": "t"})
    assert status == 503
    await user.refused("job:create", {"type": "t"}, code="unavailable")
    await user.refused("job:subscribe", {"job_id": job["id"]}, code="unavailable")
    await worker.refused("claim", {}, code="unavailable")
    assert (await server.rest("GET", "/readyz"))[0] == 503
    assert (await server.rest("GET", "/healthz"))[0] == 200
    status, metrics = await server.rest("GET", "/metrics")
    assert status == 200
    assert "jobspine_store_up 0" in metrics.splitlines()

    store.down = False
    assert (await server.rest("GET", "/readyz"))[0] == 200
    assert (await user.ok("job:subscribe", {"job_id": job["id"]}))["job"]["seq"] == 1
    assert (await worker.ok("claim", {}))["job"]["id"] == job["id"]


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
    assert _assert_envelope(body, "validation_error")["details"] == {"field": "input"}
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
    assert _assert_envelope(body, "validation_error")["details"] == {"field": "user_id"}
    nul_subject = live_server.raw_token({"sub": "u\x001", "exp": 2**40})
    status, body = await live_server.rest("GET", "/api/jobs", token=nul_subject)
    assert status == 401, body
    _assert_envelope(body, "unauthorized")


@pytest.mark.postgres
async def test_a_dropped_database_is_an_outage_not_an_internal_error(
    start_server: StartServer, postgres_dsn: str
) -> None:
    from tests.support.postgres import drop_database, opened_postgres_store

    async with opened_postgres_store(postgres_dsn, backlog_size=TEST_BACKLOG) as store:
        server = await start_server(store=store)
        token = server.token("u1")
        job = await _create(server, token)
        await drop_database(urlsplit(postgres_dsn).path.lstrip("/"))
        for _ in range(3):  # the pool's lost connections first, then failed reconnects
            status, body = await server.rest("GET", f"/api/jobs/{job['id']}", token=token)
            assert status == 503, body
            _assert_envelope(body, "unavailable")
        assert (await server.rest("GET", "/readyz"))[0] == 503


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
    _assert_envelope(body, "bad_request")


async def test_values_nested_too_deep_are_refused(live_server: LiveServer) -> None:
    token = live_server.token("u1")
    for depth, status_code, code in [(150, 422, "validation_error"), (5000, 400, "bad_request")]:
        raw = '{"type": "t", "input": ' + '{"a":' * depth + "{}" + "}" * depth + "}"
        status, body = await live_server.rest("POST", "/api/jobs", token=token, data=raw)
        assert status == status_code, body
        _assert_envelope(body, code)
    status, page = await live_server.rest("GET", "/api/jobs", token=token)
    assert (status, page["items"]) == (200, [])
