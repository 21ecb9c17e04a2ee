"""docs/clients.md's Python example, run as written against a real server and worker: the
first ``python`` block of its "In Python" section is saved as a script and run as its own
process (no second copy that could drift)."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

from server.keys import SIO
from server.realtime.rooms import USER_NAMESPACE, job_of_room
from tests.support.docs import doc_block
from tests.support.jobs import wait_until
from tests.support.sdk_live import running, sdk_worker
from tests.support.server import LiveServer, StartServer
from workers.examples import EXAMPLE_HANDLERS

SECTION = "## In Python"
EVENT_LINE = re.compile(r"^(\d+) (job:\w+)$", re.MULTILINE)


async def _watched_job(server: LiveServer) -> str | None:
    """The id of a job whose room on ``/`` has a member (the example's watch), if any."""
    rooms = server.app[SIO].server.manager.rooms.get(USER_NAMESPACE, {})
    for room, members in rooms.items():
        job_id = job_of_room(room) if isinstance(room, str) else None
        if job_id is not None and members:
            return job_id
    return None


def example_code() -> str:
    return doc_block(SECTION, "python")


def test_the_example_is_about_twenty_lines_of_python() -> None:
    code = example_code()
    compile(code, "example.py", "exec")
    assert len([line for line in code.splitlines() if line.strip()]) <= 25


async def test_the_python_example_watches_a_job_to_its_end(
    start_server: StartServer, tmp_path: Path
) -> None:
    server = await start_server(env={"PROGRESS_EVENTS_PER_S": "0"})
    script = tmp_path / "example.py"
    script.write_text(example_code())
    env = {**os.environ, "JOBSPINE_URL": server.url, "JOBSPINE_USER_TOKEN": server.token("alice")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        # The worker starts once the example watches its job: a job that ended before the
        # watch joined would be shown as its snapshot alone, with no event lines to check.
        await wait_until(lambda: _watched_job(server), within=30)
        async with running(sdk_worker(server, EXAMPLE_HANDLERS)):
            out, _ = await asyncio.wait_for(process.communicate(), 60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    output = out.decode()

    assert process.returncode == 0, output
    assert "status: live" in output
    assert "final: completed {" in output
    events = [(int(seq), kind) for seq, kind in EVENT_LINE.findall(output)]
    seqs = [seq for seq, _ in events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), output
    assert events[-1][1] == "job:completed"
    assert len(list((tmp_path / ".jobspine-cursors").iterdir())) == 1
