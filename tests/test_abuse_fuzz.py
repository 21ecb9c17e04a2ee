"""Property-based fuzz (hypothesis) of every user event, every worker RPC and every REST
route against one real server: whatever the payload, the answer is the contract's envelope,
never ``internal_error`` / HTTP 500 nor a traceback, every call gets its ack, and the server
is healthy after. Examples per target: :data:`EXAMPLES`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobspine_shared.wire_schema import CALLS
from tests.support.server import (
    LiveServer,
    SocketClient,
    StartServer,
    connect_user,
    connect_worker,
)

EXAMPLES = 100
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)

#: Every call of the contract, from the wire schema: the user's on "/", the worker's on "/workers".
USER_EVENTS = list(CALLS["/"])
WORKER_EVENTS = list(CALLS["/workers"])
FIELDS = [
    "job_id", "after_seq", "epoch", "cursors", "epochs", "type", "input", "lease", "progress",
    "step", "data", "result", "error", "types", "worker_id", "token", "priority", "tags",
    "run_at", "parent_id", "timeout_s", "retry", "idempotency_key", "correlation_id", "reason",
    "message", "retryable", "code",
]  # fmt: skip

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def payloads(known: list[str]) -> st.SearchStrategy[Any]:
    """Objects of the events' field names with any values (some of them real ids and
    leases), and now and then something that is not an object at all."""
    values = json_values | st.sampled_from(known)
    fields = st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), values, max_size=6)
    return fields | json_values


def _assert_envelope(ack: Any, what: str) -> None:
    assert isinstance(ack, dict), (what, ack)
    assert isinstance(ack.get("ok"), bool), (what, ack)
    if not ack["ok"]:
        error = ack["error"]
        assert error["code"] != "internal_error", (what, ack)
        assert isinstance(error["message"], str), (what, ack)
        assert "Traceback" not in error["message"], (what, ack)


class Target:
    def __init__(self, server: LiveServer, user: SocketClient, worker: SocketClient) -> None:
        self.server, self.user, self.worker = server, user, worker
        self.known: list[str] = []


@pytest.fixture
async def target(start_server: StartServer) -> AsyncIterator[Target]:
    server = await start_server()
    user = await connect_user(server, "fuzzer")
    worker = await connect_worker(server, "fuzz-worker")
    fuzz = Target(server, user, worker)
    job = (await user.ok("job:create", {"type": "t", "input": {}}))["job"]
    await user.ok("job:create", {"type": "t", "input": {}})
    claim = await worker.ok("claim", {})
    fuzz.known = [job["id"], claim["job"]["id"], claim["lease"], job["epoch"], "t"]
    yield fuzz
    assert user.connected
    assert worker.connected
    await server.assert_healthy()


CALL_TARGETS = [("/", e) for e in USER_EVENTS] + [("/workers", e) for e in WORKER_EVENTS]


@pytest.mark.parametrize(
    ("namespace", "event"), CALL_TARGETS, ids=[f"{n} {e}" for n, e in CALL_TARGETS]
)
@FUZZ
@given(data=st.data())
async def test_every_call_always_answers_with_the_envelope(
    target: Target, namespace: str, event: str, data: st.DataObject
) -> None:
    """Every user event on "/" and every worker RPC on "/workers"."""
    client = target.user if namespace == "/" else target.worker
    payload = data.draw(payloads(target.known))
    ack = await client.call(event, payload)
    _assert_envelope(ack, f"{namespace} {event} {payload!r}")


ROUTES = [
    ("POST", "/api/jobs"),
    ("GET", "/api/jobs"),
    ("GET", "/api/jobs/{id}"),
    ("DELETE", "/api/jobs/{id}"),
    ("GET", "/api/jobs/{id}/events"),
    ("POST", "/api/jobs/{id}/pause"),
    ("POST", "/api/jobs/{id}/resume"),
    ("POST", "/api/jobs/{id}/cancel"),
    ("POST", "/api/jobs/{id}/restart"),
    ("GET", "/api/jobs/{id}/recovery"),
    ("GET", "/api/jobs/{id}/checkpoint"),
    ("GET", "/api/jobs/{id}/audit"),
    ("GET", "/api/stats"),
    ("GET", "/api/admin/supervisor"),
    ("POST", "/api/admin/jobs/{id}/check"),
]
path_ids = st.text(alphabet=st.characters(blacklist_categories=["Cs", "Cc"]), max_size=40)


@pytest.mark.parametrize(("method", "route"), ROUTES, ids=[f"{m} {r}" for m, r in ROUTES])
@FUZZ
@given(data=st.data())
async def test_rest_routes_never_answer_500(
    target: Target, method: str, route: str, data: st.DataObject
) -> None:
    job_id = data.draw(st.sampled_from(target.known) | path_ids.filter(lambda s: "/" not in s))
    path = route.replace("{id}", quote(job_id, safe="") or "x")
    query = data.draw(
        st.dictionaries(
            st.sampled_from(["limit", "cursor", "state", "type", "user_id", "after_seq", "epoch"]),
            st.text(max_size=12),
            max_size=3,
        )
    )
    role = data.draw(st.sampled_from(["user", "admin"]))
    body = data.draw(
        json_values | st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=5)
    )
    token = target.server.token("fuzzer", role)
    async with target.server.http.request(
        method,
        target.server.url + path,
        params=query,
        json=body if method == "POST" else None,
        headers={"Authorization": f"Bearer {token}"},
    ) as response:
        text = await response.text()
        assert response.status < 500 or response.status == 503, (method, path, query, body, text)
        assert "Traceback" not in text
        if response.status >= 400:
            envelope = await response.json()
            assert envelope["error"]["code"] != "internal_error", envelope
