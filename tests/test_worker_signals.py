"""Workers hear of changes at once (contract v2): ``jobs:available`` to workers whose last
claim came back empty, ``lease:revoked`` and ``job:pause_requested`` to the lease holder."""

from __future__ import annotations

from typing import Any

from tests.support.server import LiveServer, SocketClient, connect_user, connect_worker


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
