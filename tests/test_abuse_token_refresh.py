"""Issue 13 hole 4, client side: the worker SDK's connection and the terminal watcher get
their token from a source (a callable, or a file read at every connect): the worker
connection comes back with the current token when the server ends a session at its token's
expiry; the watcher (the Python client) sends the source's next token with auth:refresh
before that, and keeps its socket."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from jobspine_shared.states import JobState
from tests.support.jobs import wait_until
from tests.support.server import LiveServer, StartServer, connect_user, connect_worker
from workers.client import JobWatcher
from workers.sdk.rpc import WorkerConnection, token_from_file

SHORT_SESSIONS = {"JWT_LEEWAY_S": "0"}


@pytest.fixture
async def server(start_server: StartServer) -> LiveServer:
    """A server that ends a session at its token's expiry, without leeway."""
    return await start_server(env=SHORT_SESSIONS)


async def test_the_worker_connection_reconnects_with_the_file_s_new_token(
    server: LiveServer, tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(server.token("w1", "worker", ttl=2) + "\n")
    connection = WorkerConnection(url=server.url, token=token_from_file(token_file))
    running = asyncio.create_task(connection.run())
    try:
        await asyncio.wait_for(connection.wait_connected(), 10)
        token_file.write_text(server.token("w1", "worker", ttl=3600))

        async def second_session() -> bool:
            return connection.sessions >= 2 and connection.connected

        await wait_until(second_session, within=15)
        ack = await connection.call("claim", {})
        assert ack["ok"] is True
    finally:
        await connection.close()
        await asyncio.wait_for(running, 10)


async def test_the_watcher_keeps_its_session_with_the_source_s_next_token(
    server: LiveServer,
) -> None:
    user = await connect_user(server, "alice")
    job = (await user.ok("job:create", {"type": "t", "input": {}}))["job"]
    tokens = [server.token("alice", ttl=2)]
    messages: list[str] = []

    def current_token() -> str:
        return tokens[-1]

    seen: list[object] = []
    watcher = JobWatcher(
        url=server.url,
        token=current_token,
        job_id=job["id"],
        on_message=messages.append,
        on_change=seen.append,
    )
    watching = asyncio.create_task(watcher.run())

    async def subscribed() -> bool:
        return bool(seen)

    await wait_until(subscribed)  # connected with the 2-second token
    tokens.append(server.token("alice", ttl=3600))

    async def refreshed() -> bool:  # before the 2-second token's exp, with auth:refresh
        return watcher.client.connection.refreshes >= 1

    await wait_until(refreshed, within=15)
    worker = await connect_worker(server)
    lease = (await worker.ok("claim", {}))["lease"]
    await worker.ok("complete", {"job_id": job["id"], "lease": lease, "result": {"ok": 1}})
    final = await asyncio.wait_for(watching, 15)
    assert final.state is JobState.COMPLETED
    assert watcher.client.connection.sessions == 1
    assert messages == []
