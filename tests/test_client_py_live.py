"""The Python client (``jobspine_client``) against real servers: a watch through a server
SIGKILLed and restarted on Postgres, a burst beyond the backlog while disconnected, one
``job:sync`` for every watched job after a reconnect, a restarted process resuming from its
stored cursors, token refresh before expiry, an expired token."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import TypedDict

import pytest

from jobspine_client import FileStorage, JobspineClient, JobspineError, Status
from jobspine_shared.states import JobState
from jobspine_shared.wire import job_to_wire
from tests.support.client_py import GatedSockets, Seen, killable_web, raw_worker
from tests.support.processes import free_port, token
from tests.support.server import StartServer
from workers.testing import wait_until


class Reconnects(TypedDict):
    reconnect_initial_s: float
    reconnect_max_s: float


FAST = Reconnects(reconnect_initial_s=0.05, reconnect_max_s=0.2)
NO_HELD_PROGRESS = {"PROGRESS_EVENTS_PER_S": "0"}


@pytest.mark.postgres
@pytest.mark.slow
async def test_a_watch_through_a_server_killed_and_restarted_ends_equal_to_the_server(
    postgres_dsn: str,
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"DATABASE_URL": postgres_dsn, **NO_HELD_PROGRESS}
    sockets = GatedSockets()
    client = JobspineClient(url, token("alice"), socket_factory=sockets, **FAST)
    seen = Seen()
    try:
        async with killable_web(port, "web-1", **env) as first:
            await client.connect()
            job = await client.create("research", {"q": 1})
            watch = client.watch(job.id)
            seen.listen(watch)
            await watch.ready
            async with raw_worker(url, token("w1", "worker")) as worker:
                lease = (await worker.ok("claim", {"types": ["research"]}))["lease"]
                for progress in (10, 20):
                    await worker.ok(
                        "progress", {"job_id": job.id, "lease": lease, "progress": progress}
                    )
                await seen.until(lambda: watch.last_seq == 4, "seq 4 live")
                sockets.gate.clear()
                first.kill(signal.SIGKILL)
                await first.wait()
            await wait_until(lambda: client.status is Status.RECONNECTING, what="reconnecting")
        async with killable_web(port, "web-2", **env):
            async with raw_worker(url, token("w1", "worker")) as worker:
                calls = {"job_id": job.id, "lease": lease}
                for progress in (30, 40, 50):
                    await worker.ok("progress", {**calls, "progress": progress})
                await worker.ok("checkpoint", {**calls, "data": {"k": 5}, "progress": 60})
                await worker.ok("complete", {**calls, "result": {"done": True}})
            emitted_before = len(sockets.emitted)
            sockets.gate.set()
            await seen.until(
                lambda: client.status is Status.LIVE and watch.last_seq == 9,
                "replayed to the end",
            )
            snapshot = job_to_wire(await client.get(job.id))
    finally:
        await client.close()

    assert watch.job is not None
    assert job_to_wire(watch.job) == snapshot
    assert snapshot["state"] == "completed"
    assert seen.seqs == list(range(2, 10))  # every seq after the first state, once each
    assert not seen.resets
    assert sockets.emitted[emitted_before:] == ["job:sync", "job:subscribe"]


async def test_a_burst_beyond_the_backlog_while_away_resets_then_goes_live(
    start_server: StartServer,
) -> None:
    """Two watched jobs: one misses more than BACKLOG_SIZE events (reset to the snapshot), the
    other two (replayed). One job:sync covers both, then each room is joined again."""
    server = await start_server(env=NO_HELD_PROGRESS)
    backlog = server.settings.backlog_size
    sockets = GatedSockets()
    client = JobspineClient(server.url, server.token("alice"), socket_factory=sockets, **FAST)
    timeline: list[str] = []
    client.on("status", lambda status: timeline.append(f"status:{status}"))
    try:
        await client.connect()
        busy, quiet = await client.create("burst"), await client.create("quiet")
        busy_watch, quiet_watch = client.watch(busy.id), client.watch(quiet.id)
        busy_seen, quiet_seen = Seen(), Seen()
        busy_seen.listen(busy_watch)
        quiet_seen.listen(quiet_watch)
        busy_watch.on("reset", lambda _: timeline.append("reset"))
        await busy_watch.ready
        await quiet_watch.ready
        async with raw_worker(server.url, server.token("w1", "worker")) as worker:
            busy_lease = (await worker.ok("claim", {"types": ["burst"]}))["lease"]
            await busy_seen.until(lambda: busy_watch.last_seq == 2, "busy started")
            sockets.gate.clear()
            await sockets.drop()
            await wait_until(lambda: client.status is Status.RECONNECTING, what="reconnecting")
            for k in range(backlog + 3):
                payload = {"job_id": busy.id, "lease": busy_lease, "progress": k}
                await worker.ok("progress", payload)
            await worker.ok("claim", {"types": ["quiet"]})
            sockets.emitted.clear()
            sockets.gate.set()
            await wait_until(lambda: client.status is Status.LIVE, within_s=20, what="live again")
            final_busy = job_to_wire(await client.get(busy.id))
            final_quiet = job_to_wire(await client.get(quiet.id))
    finally:
        await client.close()

    assert busy_watch.job is not None
    assert job_to_wire(busy_watch.job) == final_busy
    assert len(busy_seen.resets) == 1
    assert busy_seen.seqs == [2]  # the burst came as one snapshot, not as events
    assert quiet_seen.seqs == [2]  # quiet's job:started, replayed
    assert quiet_watch.job is not None
    assert job_to_wire(quiet_watch.job) == final_quiet
    assert timeline.index("reset") < len(timeline) - 1
    assert timeline[-1] == "status:live"
    assert "status:reconnecting" in timeline
    assert sockets.emitted == ["job:sync", "job:subscribe", "job:subscribe"]


async def test_a_restarted_process_resumes_by_replay_from_its_stored_cursor(
    start_server: StartServer, tmp_path: Path
) -> None:
    server = await start_server(env={"BACKLOG_SIZE": "200", **NO_HELD_PROGRESS})
    storage = FileStorage(tmp_path / "cursors")
    async with (
        JobspineClient(server.url, server.token("alice"), storage) as first,
        raw_worker(server.url, server.token("w1", "worker")) as worker,
    ):
        job = await first.create("research")
        watch = first.watch(job.id)
        await watch.ready
        lease = (await worker.ok("claim", {}))["lease"]
        await wait_until(lambda: watch.last_seq == 2, what="started seen")
    async with raw_worker(server.url, server.token("w1", "worker")) as worker:
        for progress in (25, 50):
            await worker.ok("progress", {"job_id": job.id, "lease": lease, "progress": progress})
    sockets = GatedSockets()
    seen = Seen()
    second = JobspineClient(server.url, server.token("alice"), storage, socket_factory=sockets)
    resumed = second.watch(job.id)  # watched before connecting, as a restarted app does
    assert resumed.last_seq == 2  # from storage, before any answer
    seen.listen(resumed)
    try:
        await second.connect()
        await resumed.ready
    finally:
        await second.close()

    assert seen.seqs == [3, 4]
    assert not seen.resets
    assert resumed.job is not None
    assert resumed.job.progress == 50.0
    assert sockets.emitted[:2] == ["job:sync", "job:subscribe"]


async def test_refreshing_the_token_before_expiry_keeps_the_socket(
    start_server: StartServer,
) -> None:
    server = await start_server(env={"JWT_LEEWAY_S": "0"})
    statuses: list[Status] = []
    issued: list[str] = []

    async def fresh_token() -> str:
        issued.append(server.token("alice", ttl=2))
        return issued[-1]

    client = JobspineClient(server.url, fresh_token, **FAST)
    client.on("status", statuses.append)
    try:
        await client.connect()
        # Two refreshes: the second one is due after the first token's exp has passed.
        await wait_until(lambda: client.connection.refreshes >= 2, within_s=20, what="refreshes")
        created = await client.create("after-refresh")
    finally:
        await client.close()

    assert created.state is JobState.CREATED
    assert client.connection.sessions == 1
    assert statuses == [Status.CONNECTING, Status.LIVE]


async def test_an_expired_token_without_refresh_reports_expired(start_server: StartServer) -> None:
    server = await start_server(env={"JWT_LEEWAY_S": "0"})
    client = JobspineClient(server.url, server.token("alice", ttl=1), ack_timeout_s=0.5, **FAST)
    statuses: list[Status] = []
    client.on("status", statuses.append)
    try:
        await client.connect()
        await wait_until(lambda: client.status is Status.EXPIRED, within_s=20, what="expired")
        with pytest.raises(JobspineError) as refused:
            await client.create("too-late")
    finally:
        await client.close()

    assert statuses == [Status.CONNECTING, Status.LIVE, Status.EXPIRED]
    assert client.connection.failure is not None
    assert client.connection.failure.code == "unauthorized"
    assert refused.value.code == "unauthorized"


async def test_refusals_carry_the_contract_s_code_and_details(start_server: StartServer) -> None:
    server = await start_server()
    async with JobspineClient(server.url, server.token("alice")) as client:
        job = await client.cancel((await client.create("t")).id)
        with pytest.raises(JobspineError) as refused:
            await client.pause(job.id)
        mine = client.watch_user()
        await mine.ready
        missing = client.watch("00000000-0000-4000-8000-00000000dead")
        with pytest.raises(JobspineError) as not_found:
            await missing.ready
    assert not_found.value.code == "not_found"
    assert missing.closed
    assert refused.value.code == "invalid_transition"
    assert refused.value.details["state"] == "cancelled"
    assert mine.jobs[job.id].state is JobState.CANCELLED
    with pytest.raises(JobspineError) as unauthorized:
        await JobspineClient(server.url, "not-a-token").connect()
    assert unauthorized.value.code == "unauthorized"


async def test_a_user_watch_lists_the_user_s_jobs_and_follows_new_ones_live(
    start_server: StartServer,
) -> None:
    server = await start_server(env=NO_HELD_PROGRESS)
    changes: list[tuple[str, str, int]] = []
    async with (
        JobspineClient(server.url, server.token("alice")) as client,
        raw_worker(server.url, server.token("w1", "worker")) as worker,
    ):
        older = await client.create("listed")
        mine = client.watch_user()
        mine.on("change", lambda job: changes.append((job.id, str(job.state), job.seq)))
        await mine.ready
        newer = await client.create("live")
        lease = (await worker.ok("claim", {"types": ["live"]}))["lease"]
        await worker.ok("progress", {"job_id": newer.id, "lease": lease, "progress": 50})
        await wait_until(
            lambda: newer.id in mine.jobs and mine.jobs[newer.id].progress == 50.0,
            what="the new job's progress",
        )
        snapshot = await client.get(newer.id)

    assert set(mine.jobs) == {older.id, newer.id}
    assert changes[0] == (older.id, "created", 1)
    assert [c for c in changes if c[0] == newer.id] == [
        (newer.id, "created", 1),
        (newer.id, "running", 2),
        (newer.id, "running", 3),
    ]
    assert mine.jobs[newer.id].state is snapshot.state


async def test_a_re_sync_beyond_the_user_s_call_rate_waits_and_loses_no_watch(
    start_server: StartServer,
) -> None:
    """With 5 calls per second (bursts of 10), re-syncing 12 watches (one job:sync and 12
    job:subscribe) is refused rate_limited part way: the client waits as told and asks again."""
    server = await start_server(env={"USER_CALLS_PER_S": "5"})
    jobs = []
    for owner in range(12):  # one call per user: the setup stays within every budget
        async with JobspineClient(server.url, server.token(f"owner-{owner}")) as setup:
            jobs.append(await setup.create("many"))
    sockets = GatedSockets()
    admin = JobspineClient(
        server.url, server.token("root", "admin"), socket_factory=sockets, **FAST
    )
    try:
        await admin.connect()
        watches = [admin.watch(job.id) for job in jobs]
        for watch in watches:
            await watch.ready
        sockets.gate.clear()
        await sockets.drop()
        await wait_until(lambda: admin.status is Status.RECONNECTING, what="reconnecting")
        sockets.emitted.clear()
        sockets.gate.set()
        await wait_until(lambda: admin.status is Status.LIVE, within_s=30, what="live again")
    finally:
        await admin.close()

    assert not any(watch.closed for watch in watches)
    assert sockets.emitted.count("job:subscribe") > 12  # some were refused and asked again
    assert sockets.emitted[0] == "job:sync"
