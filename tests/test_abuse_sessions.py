"""Issue 13 hole 4: a socket lives no longer than its token. At ``exp`` plus ``JWT_LEEWAY_S``
the server emits ``session:expired`` ``{}`` and disconnects it, so it hears nothing more;
``auth:refresh`` with a token of the same ``sub`` and role extends it; timers go with their
sockets."""

from __future__ import annotations

import jwt
import pytest

from server.keys import SIO
from server.limits.wiring import SOCKET_GUARD
from tests.support.jobs import wait_until
from tests.support.server import StartServer, connect_user, connect_worker


async def test_an_expired_session_is_told_and_disconnected(start_server: StartServer) -> None:
    server = await start_server(env={"JWT_LEEWAY_S": "0"})
    user = await connect_user(server, "short", token=server.token("short", ttl=2))
    await user.events.wait_for(lambda events: ("session:expired", {}) in events)

    async def gone() -> bool:
        return not user.connected

    await wait_until(gone)
    # It hears nothing of a job of its user created after the end.
    other = await connect_user(server, "short")
    job = (await other.ok("job:create", {"type": "t", "input": {}}))["job"]
    await other.events.wait_for_job_event(job["id"], "job:created")
    assert user.events.of_job(job["id"]) == []

    async def no_timer_left_but_the_others() -> bool:
        return server.app[SOCKET_GUARD].timers() == 1

    await wait_until(no_timer_left_but_the_others)


async def test_auth_refresh_extends_the_session(start_server: StartServer) -> None:
    server = await start_server()
    user = await connect_user(server, "u1", token=server.token("u1", ttl=60))
    fresh = server.token("u1", ttl=3600)
    expected_exp = jwt.decode(fresh, options={"verify_signature": False})["exp"]
    ack = await user.ok("auth:refresh", {"token": fresh})
    assert ack == {"ok": True, "exp": expected_exp}
    sid = user.sio.get_sid("/")
    assert sid is not None
    saved = await server.app[SIO].identity(sid, "/")
    assert saved is not None
    assert saved.expires_at == expected_exp


@pytest.mark.parametrize(
    ("sub", "role"), [("u2", "user"), ("u1", "admin")], ids=["other-sub", "other-role"]
)
async def test_auth_refresh_refuses_another_identity(
    start_server: StartServer, sub: str, role: str
) -> None:
    server = await start_server()
    user = await connect_user(server, "u1")
    error = await user.refused("auth:refresh", {"token": server.token(sub, role)}, code="forbidden")
    assert "same sub and role" in error["message"]
    await user.refused("auth:refresh", {"token": "garbage"}, code="unauthorized")
    await user.ok("job:create", {"type": "t", "input": {}})  # still the old session


async def test_workers_refresh_too_and_timers_go_with_their_sockets(
    start_server: StartServer,
) -> None:
    server = await start_server()
    guard = server.app[SOCKET_GUARD]
    worker = await connect_worker(server, "w1")
    ack = await worker.ok("auth:refresh", {"token": server.token("w1", "worker", ttl=7200)})
    assert ack["exp"] > 0
    assert guard.timers() == 1
    await worker.disconnect()

    async def no_timers() -> bool:
        return guard.timers() == 0

    await wait_until(no_timers)
