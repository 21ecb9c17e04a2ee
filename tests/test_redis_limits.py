"""The rate-limit buckets in Redis (server/limits/buckets.py) with routing and batching:
a limit on one caller holds across instances, and batches never admit beyond the bucket."""

from __future__ import annotations

import uuid

import pytest
from redis.asyncio import Redis

from server.limits.buckets import RedisRateLimiter
from tests.support.redis_apps import bus_env, two_instances
from tests.support.server import StartServer, connect_user

pytestmark = [pytest.mark.redis]


async def test_batched_takes_of_two_instances_never_exceed_the_shared_bucket(
    redis_url: str,
) -> None:
    redis = Redis.from_url(redis_url)
    prefix = f"jobspine-test-{uuid.uuid4().hex[:12]}:rate"
    try:
        # No refill to speak of: 30 tokens in all, taken 10 at a time by whichever asks.
        a, b = (
            RedisRateLimiter(redis, prefix=prefix, rate=0.001, burst=30, batch=10) for _ in range(2)
        )
        admitted = [await (a if n % 2 else b).take("alice") is None for n in range(100)]
        assert sum(admitted) == 30
        # 30 calls admitted with 3 batches; each of the 70 refusals asked Redis.
        assert a.round_trips + b.round_trips == 3 + 70
        assert await a.take("bob") is None  # another key has a bucket of its own
    finally:
        await redis.aclose()


@pytest.mark.postgres
async def test_a_users_call_rate_holds_across_instances(
    start_server: StartServer, postgres_dsn: str, redis_url: str, redis_channel: str
) -> None:
    # A call every 2 s, bursts of 1: after one call on either, the other is refused.
    env = bus_env(postgres_dsn, redis_url, redis_channel, USER_CALLS_PER_S="0.5")
    near, far = await two_instances(start_server, env)
    on_near, on_far = await connect_user(near, "erin"), await connect_user(far, "erin")
    await on_near.ok("job:create", {"type": "t", "input": {}})
    error = await on_far.refused("job:create", {"type": "t", "input": {}}, code="rate_limited")
    assert error["details"]["limit"] == "user_calls_per_s"
    await (await connect_user(far, "frank")).ok("job:create", {"type": "t", "input": {}})
