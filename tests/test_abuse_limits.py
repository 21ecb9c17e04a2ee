"""Issue 13 hole 2, over real sockets and HTTP: call rates per user (REST and ``/`` together)
and per worker ``sub``, sockets per user, subscriptions per socket. Each refusal is
``rate_limited`` with ``details: {limit, retry_after_s}`` (HTTP 429 with ``Retry-After``) and
changes nothing. Time is driven through the buckets' clock, never waited for."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from server.actors import Actor, Role
from server.commands.user import parse_list
from server.limits.buckets import LocalRateLimiter
from server.limits.rest import CALL_LIMITS
from server.limits.wiring import SOCKET_GUARD
from server.store.base import JobStore
from tests.support.jobs import wait_until
from tests.support.server import (
    LiveServer,
    StartServer,
    connect_user,
    connect_worker,
    refusal,
)


class FrozenClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _freeze(server: LiveServer) -> FrozenClock:
    clock = FrozenClock()
    limits = server.app[CALL_LIMITS]
    for bucket in (limits.users, limits.workers):
        assert isinstance(bucket, LocalRateLimiter)
        bucket.clock = clock
    return clock


async def _job_count(server: LiveServer, user: str) -> int:
    page = await server.repository.list_jobs(
        Actor(id=user, role=Role.USER), parse_list({"limit": 100})
    )
    return len(page.items)


def _assert_rate_limited(error: dict[str, Any], limit: str) -> None:
    assert error["code"] == "rate_limited", error
    assert error["details"]["limit"] == limit, error
    assert error["details"]["retry_after_s"] > 0, error


async def test_user_calls_share_one_bucket_across_rest_and_sockets(
    start_server: StartServer,
) -> None:
    server = await start_server(env={"USER_CALLS_PER_S": "5"})  # bursts of 10
    clock = _freeze(server)
    user = await connect_user(server, "flooder")
    token = server.token("flooder")
    for _ in range(5):
        await user.ok("job:create", {"type": "t", "input": {}})
    for _ in range(5):
        status, _ = await server.rest("POST", "/api/jobs", token=token, json={"type": "t"})
        assert status == 201
    error = await user.refused("job:create", {"type": "t", "input": {}}, code="rate_limited")
    _assert_rate_limited(error, "user_calls_per_s")
    async with server.http.post(
        server.url + "/api/jobs", json={"type": "t"}, headers={"Authorization": f"Bearer {token}"}
    ) as response:
        assert response.status == 429
        assert response.headers["Retry-After"] == "1"
        body = await response.json()
    _assert_rate_limited(body["error"], "user_calls_per_s")
    assert await _job_count(server, "flooder") == 10  # the refusals created nothing
    # Another user has a bucket of their own; and time refills the flooder's.
    other = await connect_user(server, "bystander")
    await other.ok("job:create", {"type": "t", "input": {}})
    clock.now += 1.0
    await user.ok("job:create", {"type": "t", "input": {}})
    assert await _job_count(server, "flooder") == 11


async def test_worker_calls_are_limited_per_worker_sub(start_server: StartServer) -> None:
    server = await start_server(env={"WORKER_CALLS_PER_S": "1"})  # bursts of 2
    _freeze(server)
    worker = await connect_worker(server, "greedy")
    for _ in range(2):
        await worker.ok("claim", {})
    error = await worker.refused("claim", {}, code="rate_limited")
    _assert_rate_limited(error, "worker_calls_per_s")
    calm = await connect_worker(server, "calm")
    await calm.ok("claim", {})


async def test_sockets_per_user_are_bounded_and_released_on_disconnect(
    start_server: StartServer,
) -> None:
    server = await start_server(env={"MAX_SOCKETS_PER_USER": "2"})
    first = await connect_user(server, "many")
    await connect_user(server, "many")
    data = await refusal(server, "/", {"token": server.token("many")})
    assert data["code"] == "rate_limited", data
    assert data["details"]["limit"] == "max_sockets_per_user", data
    assert (await connect_user(server, "someone-else")).connected
    guard = server.app[SOCKET_GUARD]
    assert guard.quota.sockets_of("many") == 2
    await first.disconnect()

    async def released() -> bool:
        return guard.quota.sockets_of("many") == 1

    await wait_until(released)
    assert (await connect_user(server, "many")).connected


async def test_subscriptions_per_socket_are_bounded(start_server: StartServer) -> None:
    server = await start_server(env={"MAX_SUBSCRIPTIONS_PER_SOCKET": "2"})
    user = await connect_user(server, "watcher")
    jobs = [(await user.ok("job:create", {"type": "t", "input": {}}))["job"]["id"] for _ in "abc"]
    for job_id in jobs[:2]:
        await user.ok("job:subscribe", {"job_id": job_id})
    error = await user.refused("job:subscribe", {"job_id": jobs[2]}, code="rate_limited")
    _assert_rate_limited(error, "max_subscriptions_per_socket")
    await user.ok("job:subscribe", {"job_id": jobs[0]})  # already in: not a new room
    await user.ok("job:unsubscribe", {"job_id": jobs[0]})
    await user.ok("job:subscribe", {"job_id": jobs[2]})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"USER_CALLS_PER_S": "0"}, "USER_CALLS_PER_S: expected a finite number > 0"),
        ({"MAX_SOCKETS_PER_USER": "-1"}, "MAX_SOCKETS_PER_USER: expected an integer"),
        ({"MAX_INPUT_BYTES": "x"}, "MAX_INPUT_BYTES: expected an integer"),
        ({"JWT_LEEWAY_S": "-5"}, "JWT_LEEWAY_S: expected a number of seconds"),
        ({"CORS_ORIGINS": "ftp://x"}, "CORS_ORIGINS: expected * or comma-separated origins"),
    ],
)
def test_limit_settings_are_validated_at_start(env: dict[str, str], message: str) -> None:
    from server.config import load_settings
    from server.errors import ConfigError
    from tests.support.server import TEST_SECRET

    with pytest.raises(ConfigError) as raised:
        load_settings({"JWT_SECRET": TEST_SECRET, **env})
    assert str(raised.value).startswith(message)


def test_the_contract_defaults() -> None:
    from server.config import load_settings
    from tests.support.server import TEST_SECRET

    settings = load_settings({"JWT_SECRET": TEST_SECRET})
    limits = settings.limits
    assert (limits.user_calls_per_s, limits.worker_calls_per_s) == (50.0, 1000.0)
    assert limits.max_active_jobs_per_user == 1000
    assert limits.max_sockets_per_user == 20
    assert limits.max_subscriptions_per_socket == 1000
    assert limits.max_input_bytes == 262_144
    assert limits.max_client_queue_bytes == 16_777_216
    assert settings.jwt.leeway_s == 30.0
    assert settings.cors_origins == ("*",)


async def test_active_jobs_per_user_are_bounded_on_both_stores(
    start_server: StartServer, live_store: JobStore
) -> None:
    server = await start_server(env={"MAX_ACTIVE_JOBS_PER_USER": "3"}, store=live_store)
    user = await connect_user(server, f"busy-{uuid.uuid4().hex[:8]}")
    jobs = [(await user.ok("job:create", {"type": "t", "input": {}}))["job"] for _ in "abc"]
    error = await user.refused("job:create", {"type": "t", "input": {}}, code="rate_limited")
    _assert_rate_limited(error, "max_active_jobs_per_user")
    owner = jobs[0]["user_id"]
    assert await _job_count(server, owner) == 3
    await user.ok("job:cancel", {"job_id": jobs[0]["id"]})  # a final job no longer counts
    await user.ok("job:create", {"type": "t", "input": {}})
    await user.refused("job:create", {"type": "t", "input": {}}, code="rate_limited")


def test_calls_in_flight_per_socket_are_bounded() -> None:
    from server.config import LimitSettings
    from server.errors import RateLimited
    from server.limits.calls import SocketQuota

    quota = SocketQuota(LimitSettings(max_calls_in_flight_per_socket=2))
    quota.enter_call("s1")
    quota.enter_call("s1")
    with pytest.raises(RateLimited) as raised:
        quota.enter_call("s1")
    assert raised.value.details == {"limit": "calls_in_flight_per_socket", "retry_after_s": 0.1}
    quota.enter_call("s2")  # another socket has its own bound
    quota.leave_call("s2")
    quota.leave_call("s1")
    quota.leave_call("s1")
    quota.enter_call("s1")  # released when the calls ended
    quota.leave_call("s1")


async def test_a_call_refused_for_its_rate_leaves_no_call_in_flight() -> None:
    from server.config import LimitSettings
    from server.errors import RateLimited
    from server.limits.calls import CallLimits, SocketQuota
    from server.realtime.sessions import SocketGuard

    settings = LimitSettings(worker_calls_per_s=1.0, max_calls_in_flight_per_socket=2)
    limits = CallLimits.build(settings)
    assert isinstance(limits.workers, LocalRateLimiter)
    limits.workers.clock = FrozenClock()  # two tokens (a burst of 2x), never refilled

    class Sockets:
        on_socket_gone: list[Any] = []

    quota = SocketQuota(settings)
    guard = SocketGuard(Sockets(), verifier=None, limits=limits, quota=quota)  # type: ignore[arg-type]
    worker = Actor(id="w1", role=Role.WORKER)
    await guard.admit_call("s1", worker)
    await guard.admit_call("s1", worker)
    guard.call_done("s1")
    with pytest.raises(RateLimited) as raised:
        await guard.admit_call("s1", worker)  # the bucket is empty: refused, nothing taken
    assert raised.value.details is not None
    assert raised.value.details["limit"] == "worker_calls_per_s"
    guard.call_done("s1")
    quota.enter_call("s1")  # both in-flight places are free again
    quota.enter_call("s1")
    with pytest.raises(RateLimited):
        quota.enter_call("s1")


def test_idle_buckets_are_forgotten() -> None:
    from server.limits import buckets

    clock = FrozenClock()
    limiter = LocalRateLimiter(rate=10, burst=20, clock=clock)
    for key in range(buckets.MAX_LOCAL_KEYS):
        limiter.take_now(str(key))
    clock.now += 10  # every bucket refilled
    limiter.take_now("one more")
    assert len(limiter) == 1
