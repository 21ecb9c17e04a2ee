"""The reference client: the follower's replay logic (pure), the terminal view, and the
watcher script against the real server."""

from __future__ import annotations

import asyncio
import io
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import socketio

from jobspine_shared.models import JobRecord
from jobspine_shared.states import JobState
from jobspine_shared.wire import job_to_wire
from server.store.memory import MemoryJobStore
from tests.support.sdk_live import RestartableServer, running, start_clocked
from tests.support.server import StartServer, connect_worker
from workers.client import (
    JobStreamFollower,
    JobWatcher,
    TerminalView,
    Verdict,
    apply_event,
    event_note,
    exit_status,
    progress_line,
)
from workers.examples import EXAMPLE_HANDLERS
from workers.sdk import Handler, JobContext, Worker, WorkerConfig
from workers.testing import wait_until

#: The real-server fixtures (``start_server``); harmless when the root conftest registers them.

JOB_ID = "00000000-0000-4000-8000-0000000000aa"
OTHER_ID = "00000000-0000-4000-8000-0000000000bb"
NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def snapshot(seq: int, *, epoch: str = "e1", **fields: Any) -> dict[str, Any]:
    job = JobRecord(
        id=JOB_ID,
        user_id="alice",
        type="research",
        created_at=NOW,
        updated_at=NOW,
        seq=seq,
        epoch=epoch,
        **fields,
    )
    return job_to_wire(job)


def event(
    seq: int, kind: str = "job:progress", *, epoch: str = "e1", job_id: str = JOB_ID, **data: Any
) -> dict[str, Any]:
    if kind == "job:progress" and not data:
        data = {"progress": float(seq), "step": f"step {seq}"}
    return {
        "job_id": job_id,
        "user_id": "alice",
        "seq": seq,
        "epoch": epoch,
        "type": kind,
        "at": "2026-11-22T10:00:05Z",
        "data": data,
    }


def following(seq: int = 3, **fields: Any) -> JobStreamFollower:
    follower = JobStreamFollower(JOB_ID)
    follower.on_subscribed(
        {"job": snapshot(seq, state=JobState.RUNNING, **fields), "events": [], "recovered": False}
    )
    return follower


# -- the follower ---------------------------------------------------------------------------


def test_first_subscribe_asks_for_the_snapshot_and_starts_from_it() -> None:
    follower = JobStreamFollower(JOB_ID)
    assert follower.subscribe_payload() == {"job_id": JOB_ID}

    follower.on_subscribed({"job": snapshot(7), "events": [], "recovered": False})

    assert follower.last_seq == 7
    assert follower.subscribe_payload() == {"job_id": JOB_ID, "after_seq": 7, "epoch": "e1"}


def test_events_before_any_snapshot_are_left_for_the_subscribe() -> None:
    assert JobStreamFollower(JOB_ID).on_event(event(1)) is Verdict.EARLY


def test_next_event_is_applied() -> None:
    follower = following(3)

    assert follower.on_event(event(4, progress=42.5, step="step 2/5: fetching")) is Verdict.APPLIED

    assert follower.job is not None
    assert (follower.job.seq, follower.job.progress) == (4, 42.5)
    assert follower.job.step == "step 2/5: fetching"


@pytest.mark.parametrize("seq", [1, 3])
def test_seen_events_are_dropped(seq: int) -> None:
    follower = following(3, progress=30.0)

    assert follower.on_event(event(seq, progress=99.0)) is Verdict.DUPLICATE

    assert follower.job is not None
    assert (follower.job.seq, follower.job.progress) == (3, 30.0)


def test_a_gap_asks_for_a_resync_from_the_cursor() -> None:
    follower = following(3)

    assert follower.on_event(event(5)) is Verdict.RESYNC

    assert follower.last_seq == 3
    assert follower.subscribe_payload() == {"job_id": JOB_ID, "after_seq": 3, "epoch": "e1"}


def test_another_epoch_asks_for_a_resync() -> None:
    assert following(3).on_event(event(4, epoch="e2")) is Verdict.RESYNC


def test_other_jobs_events_are_ignored() -> None:
    follower = following(3)

    assert follower.on_event(event(4, job_id=OTHER_ID)) is Verdict.OTHER_JOB
    assert follower.last_seq == 3


def test_recovered_replay_fills_the_gap_and_skips_what_was_seen() -> None:
    follower = following(3)
    assert follower.on_event(event(4)) is Verdict.APPLIED

    applied = follower.on_subscribed(
        {"job": snapshot(6), "events": [event(4), event(5), event(6)], "recovered": True}
    )

    assert [e["seq"] for e in applied] == [5, 6]
    assert follower.last_seq == 6
    assert follower.snapshots == 1
    # A live event that raced the replay is now a duplicate.
    assert follower.on_event(event(6)) is Verdict.DUPLICATE
    assert follower.on_event(event(7)) is Verdict.APPLIED


def test_unrecovered_replay_restarts_from_the_snapshot() -> None:
    follower = following(3)

    applied = follower.on_subscribed(
        {"job": snapshot(250, progress=80.0), "events": [], "recovered": False}
    )

    assert applied == []
    assert follower.job is not None
    assert (follower.job.seq, follower.job.progress) == (250, 80.0)
    assert follower.snapshots == 2


def test_a_new_epoch_in_the_snapshot_replaces_the_view() -> None:
    follower = following(9)

    follower.on_subscribed({"job": snapshot(2, epoch="e2"), "events": [], "recovered": True})

    assert (follower.last_seq, follower.epoch) == (2, "e2")


def test_a_replay_with_a_hole_falls_back_to_the_snapshot() -> None:
    follower = following(3)

    follower.on_subscribed({"job": snapshot(6), "events": [event(4), event(6)], "recovered": True})

    assert follower.last_seq == 6
    assert follower.snapshots == 2


def test_events_drive_the_state_machine() -> None:
    job = JobStreamFollower(JOB_ID)
    job.on_subscribed({"job": snapshot(1), "events": [], "recovered": False})
    stream = [
        event(2, "job:started", attempt=1, worker_id="w", resumed=False),
        event(3, progress=40.0, step="step 2/5: fetching sources"),
        event(4, "job:checkpoint", size_bytes=10),
        event(5, "job:pause_requested"),
        event(6, "job:paused", reason="user"),
        event(7, "job:resumed"),
        event(8, "job:started", attempt=2, worker_id="w", resumed=True),
        event(9, "job:checkpoint", size_bytes=10, progress=60.0),
        event(10, "job:completed", result={"answer": 42}),
    ]
    states = []
    for item in stream:
        assert job.on_event(item) is Verdict.APPLIED
        assert job.job is not None
        states.append(job.job.state)

    assert states == [
        JobState.RUNNING,
        JobState.RUNNING,
        JobState.RUNNING,
        JobState.RUNNING,
        JobState.PAUSED,
        JobState.CREATED,
        JobState.RUNNING,
        JobState.RUNNING,
        JobState.COMPLETED,
    ]
    assert job.job is not None
    assert job.job.attempt == 2
    assert job.job.result == {"answer": 42}
    assert job.job.progress == 100.0
    assert job.job.has_checkpoint


def test_failure_and_restart() -> None:
    base = JobRecord(
        id=JOB_ID, user_id="u", type="t", created_at=NOW, updated_at=NOW, epoch="e1", seq=1
    )
    error = {"code": "handler_error", "message": "boom", "retryable": False}

    failed = apply_event(base, event(2, "job:failed", error=error))
    restarted = apply_event(failed, event(3, "job:restarted"))

    assert failed.state is JobState.FAILED
    assert failed.error is not None
    assert failed.error.message == "boom"
    assert exit_status(failed) == 1
    assert restarted.state is JobState.CREATED
    assert restarted.error is None


# -- rendering ------------------------------------------------------------------------------


def test_progress_line() -> None:
    job = JobRecord(
        id=JOB_ID,
        user_id="u",
        type="research",
        created_at=NOW,
        updated_at=NOW,
        epoch="e1",
        state=JobState.RUNNING,
        progress=42.5,
        step="step 2/5: fetching sources",
    )

    assert progress_line(job, width=10) == (
        "[####......] 42.5% step 2/5: fetching sources  state=running"
    )
    assert len(progress_line(job, width=10, max_length=30)) == 30


def test_terminal_view_redraws_the_bar_and_prints_state_changes_on_their_own_line() -> None:
    out = io.StringIO()
    view = TerminalView(out, width=4)
    job = JobRecord(
        id=JOB_ID,
        user_id="u",
        type="t",
        created_at=NOW,
        updated_at=NOW,
        epoch="e1",
        state=JobState.RUNNING,
        attempt=1,
    )

    view.show(job)
    view.show(job.evolve(progress=50.0, step="step 1/2: a"))
    view.show(job.evolve(state=JobState.COMPLETED, progress=100.0, result={"ok": 1}))

    assert out.getvalue() == (
        "running (attempt 1)\n"
        "\r[....] 0.0%  state=running"
        "\r[##..] 50.0% step 1/2: a  state=running"
        "\ncompleted: result={'ok': 1}\n"
    )


RECOVERY = {
    "job_id": JOB_ID,
    "state": "paused",
    "resumable": True,
    "restartable": False,
    "checkpoint": {"present": True, "progress": 35.0},
    "recovery_attempts": 1,
    "max_recovery_attempts": 3,
}


@pytest.mark.parametrize(
    ("kind", "data", "note"),
    [
        ("job:paused", {"reason": "stalled"}, "  its worker stopped sending heartbeats (stalled)"),
        ("job:paused", {"reason": "user"}, "  paused at a user's request"),
        (
            "job:recovery",
            RECOVERY,
            f"  resumable from its checkpoint at 35.0% (recovery 1 of 3): "
            f"POST /api/jobs/{JOB_ID}/resume continues it",
        ),
        (
            "job:recovery",
            {**RECOVERY, "resumable": False, "restartable": True, "recovery_attempts": 3},
            f"  not resumable (recovery 3 of 3): POST /api/jobs/{JOB_ID}/restart starts it again",
        ),
        ("job:recovery", {"resumable": False}, "  not recoverable"),
        ("job:resumed", {}, "  resumed: waiting for a worker to continue from the checkpoint"),
        ("job:restarted", {}, "  restarted: waiting for a worker to start from scratch"),
        ("job:progress", {"progress": 1.0}, None),
        ("job:completed", {"result": None}, None),
    ],
)
def test_event_notes_say_why_a_job_paused_and_how_to_go_on(
    kind: str, data: dict[str, Any], note: str | None
) -> None:
    assert event_note(event(7, kind, **data)) == note


def test_terminal_view_messages_take_the_bar_s_place_and_the_bar_is_drawn_below() -> None:
    out = io.StringIO()
    view = TerminalView(out, width=4)
    job = JobRecord(
        id=JOB_ID,
        user_id="u",
        type="t",
        created_at=NOW,
        updated_at=NOW,
        epoch="e1",
        state=JobState.PAUSED,
        progress=50.0,
    )

    view.message("before any bar")
    view.show(job)
    view.message("  stalled")
    view.message("  resumable")

    bar = "[##..] 50.0%  state=paused"
    assert out.getvalue() == (
        "before any bar\n"
        "paused\n"
        f"\r{bar}"
        f"\r{'  stalled'.ljust(len(bar))}\n{bar}"
        f"\r{'  resumable'.ljust(len(bar))}\n{bar}"
    )


# -- against the real server ----------------------------------------------------------------

USER = "alice"
SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "watch_job.py"


class GatedClient(socketio.AsyncClient):  # type: ignore[misc]  # socketio ships no types
    """A reconnecting client whose (re)connects wait for ``gate``: the test decides when the
    watcher comes back, so what happened meanwhile is certain."""

    def __init__(self) -> None:
        super().__init__(
            reconnection=True,
            reconnection_delay=0.05,
            reconnection_delay_max=0.2,
            handle_sigint=False,
        )
        self.gate = asyncio.Event()
        self.gate.set()

    async def connect(self, *args: Any, **kwargs: Any) -> None:
        await self.gate.wait()
        await super().connect(*args, **kwargs)


async def create(url: str, token: str, job_type: str, job_input: dict[str, Any]) -> str:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{url}/api/jobs",
            json={"type": job_type, "input": job_input},
            headers={"Authorization": f"Bearer {token}"},
        ) as response,
    ):
        assert response.status == 201
        job_id: str = (await response.json())["id"]
        return job_id


def worker_for(url: str, token: str, handlers: Mapping[str, Handler]) -> Worker:
    worker = Worker(
        WorkerConfig(
            url=url,
            token=token,
            heartbeat_interval_s=0.1,
            poll_interval_s=0.05,
            reconnect_initial_s=0.05,
            reconnect_max_s=0.2,
        )
    )
    for job_type, handler in handlers.items():
        worker.register(job_type, handler)
    return worker


async def test_the_watcher_follows_a_job_to_completion(start_server: StartServer) -> None:
    server = await start_server()
    seen: list[JobRecord] = []
    job_id = await create(
        server.url, server.token(USER), "research", {"query": "q", "steps": 4, "step_seconds": 0}
    )
    watcher = JobWatcher(
        url=server.url, token=server.token(USER), job_id=job_id, on_change=seen.append
    )
    watching = asyncio.create_task(watcher.run())
    await wait_until(lambda: bool(seen), what="the first snapshot")
    async with running(worker_for(server.url, server.token("w", "worker"), EXAMPLE_HANDLERS)):
        final = await asyncio.wait_for(watching, 20)

    assert final.state is JobState.COMPLETED
    assert exit_status(final) == 0
    assert final.result is not None
    assert final.result["completed_steps"] == 4
    progress = [job.progress for job in seen]
    assert progress == sorted(progress)
    assert any(job.step == "step 2/4: fetching sources" for job in seen) or progress[-1] == 100


async def test_the_watcher_reports_a_failure(start_server: StartServer) -> None:
    server = await start_server()
    job_id = await create(server.url, server.token(USER), "research", {"steps": 0})
    async with running(worker_for(server.url, server.token("w", "worker"), EXAMPLE_HANDLERS)):
        final = await asyncio.wait_for(
            JobWatcher(url=server.url, token=server.token(USER), job_id=job_id).run(), 20
        )

    assert final.state is JobState.FAILED
    assert exit_status(final) == 1
    assert final.error is not None
    assert final.error.message.startswith("invalid input: steps")


async def test_the_watcher_explains_a_stalled_pause_and_the_resume(
    start_server: StartServer,
) -> None:
    clocked = await start_clocked(start_server)
    server = clocked.server
    job_id = await create(server.url, server.token(USER), "stuck", {})
    messages: list[str] = []
    watcher = JobWatcher(
        url=server.url, token=server.token(USER), job_id=job_id, on_message=messages.append
    )
    watching = asyncio.create_task(watcher.run())
    raw = await connect_worker(server)
    claim = await raw.ok("claim", {"types": ["stuck"]})
    lease = {"job_id": job_id, "lease": claim["lease"]}
    await raw.ok("checkpoint", {**lease, "data": {"done": 2}, "progress": 40})
    # no more heartbeats: the supervisor pauses the job; the watcher says why and what next
    await clocked.recovered_as_stale(job_id, "paused")
    await wait_until(lambda: len(messages) >= 2, within_s=20, what="stalled and recovery notes")
    status, _ = await server.rest("POST", f"/api/jobs/{job_id}/resume", token=server.token(USER))
    assert status == 200
    await wait_until(lambda: len(messages) >= 3, within_s=20, what="the resume note")
    status, _ = await server.rest("POST", f"/api/jobs/{job_id}/cancel", token=server.token(USER))
    assert status == 200
    final = await asyncio.wait_for(watching, 20)

    assert final.state is JobState.CANCELLED
    assert messages == [
        "  its worker stopped sending heartbeats (stalled)",
        f"  resumable from its checkpoint at 40.0% (recovery 1 of 3): "
        f"POST /api/jobs/{job_id}/resume continues it",
        "  resumed: waiting for a worker to continue from the checkpoint",
    ]


@pytest.mark.parametrize(("backlog", "snapshots"), [(200, 1), (2, 2)])
async def test_the_watcher_resumes_its_stream_after_a_server_restart(
    backlog: int, snapshots: int
) -> None:
    """Events published while the watcher was away are replayed from its cursor; when the
    backlog no longer covers them, it starts again from the snapshot."""
    server = RestartableServer(store=MemoryJobStore(backlog_size=backlog))
    await server.start()
    step_done, go_on = asyncio.Event(), asyncio.Event()

    async def handler(ctx: JobContext) -> str:
        await ctx.checkpoint({"k": 0})
        step_done.set()
        await go_on.wait()
        for k in range(1, 6):
            await ctx.checkpoint({"k": k}, progress=k * 10)
        return "done"

    client = GatedClient()
    try:
        seen: list[JobRecord] = []
        job_id = await create(server.url, server.token(USER), "steps", {})
        watcher = JobWatcher(
            url=server.url,
            token=server.token(USER),
            job_id=job_id,
            on_change=seen.append,
            client_factory=lambda: client,
        )
        watching = asyncio.create_task(watcher.run())
        worker = worker_for(server.url, server.token("w", "worker"), {"steps": handler})
        async with running(worker):
            await asyncio.wait_for(step_done.wait(), 10)
            await wait_until(lambda: bool(seen) and seen[-1].has_checkpoint, what="seen")
            client.gate.clear()
            await server.stop()
            await wait_until(lambda: not client.connected, what="watcher disconnected")
            await server.start()
            go_on.set()

            async def finished() -> bool:
                job = await server.store.get(job_id)
                return job is not None and job.record.state is JobState.COMPLETED

            await wait_until(finished, what="completed while the watcher was away")
            client.gate.set()
            final = await asyncio.wait_for(watching, 20)
    finally:
        await server.stop()

    assert final.state is JobState.COMPLETED
    assert final.result == "done"
    assert watcher.follower.snapshots == snapshots
    seqs = [job.seq for job in seen]
    assert seqs == sorted(seqs)


async def run_script(*args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(SCRIPT),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode()


async def test_the_watch_script_exits_0_on_completion_and_1_on_failure(
    start_server: StartServer,
) -> None:
    server = await start_server()
    good = await create(
        server.url,
        server.token(USER),
        "trade",
        {"symbol": "ACME", "quantity": 10, "steps": 3, "step_seconds": 0.05},
    )
    bad = await create(server.url, server.token(USER), "trade", {"symbol": "acme", "quantity": 10})
    async with running(worker_for(server.url, server.token("w", "worker"), EXAMPLE_HANDLERS)):
        good_status, good_out = await run_script(
            "--url", server.url, "--token", server.token(USER), good
        )
        bad_status, bad_out = await run_script(
            "--url", server.url, "--token", server.token(USER), bad
        )
    missing_status, missing_out = await run_script(
        "--url", server.url, "--token", server.token(USER), "00000000-0000-4000-8000-00000000dead"
    )

    assert good_status == 0, good_out
    assert "completed: result=" in good_out
    assert bad_status == 1, bad_out
    assert "failed: handler_error: invalid input: symbol must be" in bad_out
    assert missing_status == 2, missing_out
    assert "not_found" in missing_out
