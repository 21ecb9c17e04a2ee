"""Workers hear of changes at once (contract v2): ``jobs:available`` to workers whose last
claim came back empty, ``lease:revoked`` and ``job:pause_requested`` to the lease holder."""

from __future__ import annotations

from typing import Any

from server.store import model
from server.store.memory import MemoryJobStore
from tests.support.server import (
    TEST_BACKLOG,
    LiveServer,
    SocketClient,
    StartServer,
    connect_user,
    connect_worker,
)


class FirstClaimReadsTooEarly(MemoryJobStore):
    """Its first claim answers as a claim whose read ran just before a create committed:
    empty, though a claimable job exists by the time the answer is shaped."""

    def __init__(self) -> None:
        super().__init__(backlog_size=TEST_BACKLOG)
        self.claims = 0

    async def _claim(
        self, types: tuple[str, ...], worker_id: str, lease: str, max_running_per_user: int
    ) -> model.ClaimResult | None:
        self.claims += 1
        if self.claims == 1:
            return None
        return await super()._claim(types, worker_id, lease, max_running_per_user)


def _named(name: str) -> Any:
    def seen(events: list[tuple[str, Any]]) -> bool:
        return any(event == name for event, _ in events)

    return seen


def _data(client: SocketClient, name: str) -> list[Any]:
    return [data for event, data in client.events.events if event == name]


async def test_an_idle_worker_hears_of_a_new_job_of_its_types(live_server: LiveServer) -> None:
    worker = await connect_worker(live_server)
    other = await connect_worker(live_server)
    user = await connect_user(live_server)
    try:
        empty = await worker.ok("claim", {"types": ["research"]})
        assert empty["job"] is None
        await other.ok("claim", {"types": ["trade"]})
        await user.ok("job:create", {"type": "research"})
        await worker.events.wait_for(_named("jobs:available"))
        assert _data(worker, "jobs:available") == [{"types": ["research"]}]
        claimed = await worker.ok("claim", {"types": ["research"]})
        assert claimed["job"] is not None
        # A busy worker (its last claim succeeded) is no longer told.
        await user.ok("job:create", {"type": "research"})
        await other.ok("claim", {"types": ["trade"]})  # a round trip after the create
        assert len(_data(worker, "jobs:available")) == 1
        assert _data(other, "jobs:available") == []
    finally:
        for client in (worker, other, user):
            await client.disconnect()


async def test_a_job_created_while_an_empty_claim_is_answered_is_not_left_waiting(
    start_server: StartServer,
) -> None:
    # The create's announcement went to the idle rooms before this socket was in them, so the
    # claim itself must take the job, or the worker would sleep until its next poll.
    store = FirstClaimReadsTooEarly()
    server = await start_server(store=store)
    worker = await connect_worker(server)
    user = await connect_user(server)
    try:
        job = (await user.ok("job:create", {"type": "research"}))["job"]
        claimed = await worker.ok("claim", {"types": ["research"]})
        assert claimed["job"] is not None
        assert claimed["job"]["id"] == job["id"]
        assert store.claims == 2
        assert _data(worker, "jobs:available") == []
    finally:
        await worker.disconnect()
        await user.disconnect()


async def test_the_lease_holder_hears_of_a_pause_request_and_a_cancel(
    live_server: LiveServer,
) -> None:
    worker = await connect_worker(live_server)
    user = await connect_user(live_server)
    try:
        job = (await user.ok("job:create", {"type": "research"}))["job"]
        claimed = await worker.ok("claim", {})
        assert claimed["job"]["id"] == job["id"]
        await user.ok("job:pause", {"job_id": job["id"]})
        await worker.events.wait_for(_named("job:pause_requested"))
        assert _data(worker, "job:pause_requested") == [{"job_id": job["id"]}]
        await user.ok("job:cancel", {"job_id": job["id"]})
        await worker.events.wait_for(_named("lease:revoked"))
        assert _data(worker, "lease:revoked") == [
            {"job_id": job["id"], "state": "cancelled", "reason": "cancelled"}
        ]
        beat = await worker.call("heartbeat", {"job_id": job["id"], "lease": claimed["lease"]})
        assert beat["error"]["code"] == "lease_lost"  # the ack keeps saying it too
    finally:
        await worker.disconnect()
        await user.disconnect()
