"""``MAX_SOCKETS_PER_USER`` across two real web processes sharing one Redis: the bound
holds for one ``sub`` whichever instance its sockets reach, and a socket that leaves one
instance frees its place for the other."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
import socketio

from tests.support.jobs import wait_until
from tests.support.processes import token, web_process
from tests.support.redis_apps import bus_env
from tests.support.server import connected, refusal_at

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

WITHIN_S = 30.0


async def refused(url: str, sub: str) -> bool:
    data = await refusal_at(url, "/", {"token": token(sub)})
    assert data["code"] == "rate_limited", data
    assert data["details"]["limit"] == "max_sockets_per_user", data
    return True


async def admitted(url: str, sub: str) -> bool:
    async with connected(url, "/", token(sub)) as client:
        return client.connected


async def test_sockets_of_one_user_are_bounded_across_instances(
    postgres_dsn: str, redis_url: str, redis_channel: str
) -> None:
    env = bus_env(postgres_dsn, redis_url, redis_channel, MAX_SOCKETS_PER_USER="2")
    async with contextlib.AsyncExitStack() as stack:
        a, b = await asyncio.gather(
            stack.enter_async_context(web_process("web-a", **env)),
            stack.enter_async_context(web_process("web-b", **env)),
        )
        on_a = await stack.enter_async_context(connected(a.url, "/", token("carol")))
        async with connected(b.url, "/", token("carol")):
            # One socket on each instance: the third is refused on either.
            assert await refused(a.url, "carol")
            assert await refused(b.url, "carol")
            assert await admitted(b.url, "dave")  # another user has places of their own
        # The socket on B left: its place is free on A too, once B removed its entry.
        await wait_until(lambda: _admits(a.url, "carol"), within=WITHIN_S)
        assert on_a.connected


async def _admits(url: str, sub: str) -> bool:
    with contextlib.suppress(socketio.exceptions.ConnectionError):
        return await admitted(url, sub)
    return False
