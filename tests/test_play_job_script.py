"""The README's by-hand walk-through (scripts/play_job.py) runs against a real server."""

from __future__ import annotations

import asyncio
import sys

from tests.support.processes import ROOT
from tests.support.server import StartServer

TIMEOUT_S = 60.0


async def test_play_job_drives_a_job_to_completed_and_the_client_sees_every_event(
    start_server: StartServer,
) -> None:
    server = await start_server()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "scripts" / "play_job.py"),
        "--url",
        server.url,
        "--user-token",
        server.token("u1"),
        "--worker-token",
        server.token("worker-1", "worker"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), TIMEOUT_S)
    text = output.decode()

    assert process.returncode == 0, text
    received = [line.split()[2] for line in text.splitlines() if line.startswith("client <-")]
    # Progress events of one job are rate limited (PROGRESS_EVENTS_PER_S): the three quick
    # reports arrive as one to three events, the last carrying the latest value.
    assert received[:3] == ["job:created", "job:started", "job:progress"], text
    assert set(received[2:-2]) == {"job:progress"}, text
    assert received[-2:] == ["job:checkpoint", "job:completed"], text
    seqs = [int(line.split("seq=")[1].split()[0]) for line in text.splitlines() if "seq=" in line]
    assert seqs == list(range(1, len(received) + 1)), text
    status, page = await server.rest("GET", "/api/jobs", token=server.token("u1"))
    assert status == 200
    assert [job["state"] for job in page["items"]] == ["completed"]
