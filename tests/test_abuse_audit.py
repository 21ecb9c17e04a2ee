"""Issue 13 hole 7: audit entries name the actor's role (a user whose ``sub`` is
``supervisor`` does not look like the supervisor), and a replay of someone else's job is
refused before its backlog is read."""

from __future__ import annotations

from server.actors import SUPERVISOR_ACTOR, Actor, Role
from server.commands.user import ReadAudit
from server.store.base import JobStore
from tests.support.counted_reads import CountedReads
from tests.support.server import StartServer, connect_user


async def test_audit_entries_name_the_actor_s_role(
    start_server: StartServer, live_store: JobStore
) -> None:
    server = await start_server(store=live_store)
    impostor = await connect_user(server, "supervisor")
    job = (await impostor.ok("job:create", {"type": "t", "input": {}}))["job"]
    await impostor.ok("job:pause", {"job_id": job["id"]})
    await server.repository.cancel(SUPERVISOR_ACTOR, job["id"])
    trail = await server.repository.audit_trail(Actor(id="supervisor"), ReadAudit(job_id=job["id"]))
    roles = [(entry.actor, entry.details["role"]) for entry in trail.entries]
    assert roles == [("supervisor", "user"), ("supervisor", "system")]
    status, body = await server.rest(
        "GET", f"/api/jobs/{job['id']}/audit", token=server.token("supervisor")
    )
    assert status == 200
    assert [item["details"]["role"] for item in body["items"]] == ["user", "system"]


async def test_a_replay_of_another_user_s_job_reads_no_backlog(start_server: StartServer) -> None:
    server = await start_server()
    owner = await connect_user(server, "owner")
    job = (await owner.ok("job:create", {"type": "t", "input": {"secret": 1}}))["job"]
    counter = CountedReads(server.store)
    other = await connect_user(server, "other")
    await other.refused("job:subscribe", {"job_id": job["id"], "after_seq": 0}, code="not_found")
    ack = await other.ok("job:sync", {"cursors": {job["id"]: 0}})
    assert ack["results"][job["id"]]["error"]["code"] == "not_found"
    status, _ = await server.rest(
        "GET", f"/api/jobs/{job['id']}/events?after_seq=0", token=server.token("other")
    )
    assert status == 404
    # No backlog read for the other user: the replays refuse first, and sync's batched read
    # reads only the caller's jobs.
    assert (counter.single, counter.found) == (0, [[]])
    await owner.ok("job:sync", {"cursors": {job["id"]: 0}})
    assert counter.found == [[], [job["id"]]]
    assert Actor(id="owner", role=Role.USER).may_see(job["user_id"])
