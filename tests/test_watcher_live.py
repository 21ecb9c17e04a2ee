"""The reference client against the real server: ``JobWatcher`` following jobs to their
end, through a stalled pause and a server restart, and the ``watch_job.py`` script's exit
status."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from jobspine_client import Status
from jobspine_shared.models import JobRecord
from jobspine_shared.states import JobState
from server.store.memory import MemoryJobStore
from tests.support.client_py import GatedSockets
from tests.support.sdk_live import RestartableServer, running, start_clocked
from tests.support.server import StartServer, connect_worker
from workers.client import JobWatcher, exit_status
from workers.examples import EXAMPLE_HANDLERS
from workers.sdk import Handler, JobContext, Worker, WorkerConfig
from workers.testing import wait_until

# -- against the real server ----------------------------------------------------------------

USER = "alice"
SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "watch_job.py"


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

    sockets = GatedSockets()
    try:
        seen: list[JobRecord] = []
        job_id = await create(server.url, server.token(USER), "steps", {})
        watcher = JobWatcher(
            url=server.url,
            token=server.token(USER),
            job_id=job_id,
            on_change=seen.append,
            socket_factory=sockets,
            reconnect_initial_s=0.05,
        )
        watching = asyncio.create_task(watcher.run())
        worker = worker_for(server.url, server.token("w", "worker"), {"steps": handler})
        async with running(worker):
            await asyncio.wait_for(step_done.wait(), 10)
            await wait_until(lambda: bool(seen) and seen[-1].has_checkpoint, what="seen")
            sockets.gate.clear()
            await server.stop()
            await wait_until(
                lambda: watcher.client.status is Status.RECONNECTING, what="watcher disconnected"
            )
            await server.start()
            go_on.set()

            async def finished() -> bool:
                job = await server.store.get(job_id)
                return job is not None and job.record.state is JobState.COMPLETED

            await wait_until(finished, what="completed while the watcher was away")
            sockets.gate.set()
            final = await asyncio.wait_for(watching, 20)
    finally:
        await server.stop()

    assert final.state is JobState.COMPLETED
    assert final.result == "done"
    assert watcher.stream is not None
    assert watcher.stream.snapshots == snapshots
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
