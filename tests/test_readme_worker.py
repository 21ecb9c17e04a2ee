"""The README's "Write your own worker" example, run as written against a real server.

The handler is not kept in a second copy that could drift: the test takes the first
``python`` block of that README section, saves it as ``my_worker.py`` and runs it as its own
process, as the README says, then drives a job through progress, a user's pause, a resume,
completion; a bad input; and a graceful stop on SIGTERM.
"""

from __future__ import annotations

import re
import signal
from pathlib import Path
from typing import Any

from tests.support.processes import ROOT, spawn, stop
from tests.support.progress_steps import step_numbers
from tests.support.server import LiveServer, StartServer, connect_user

README = ROOT / "README.md"
SECTION = "## Write your own worker"
CODE_BLOCK = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)
USER = "alice"
#: Generous: two cores, shared with other test runs.
WAIT_S = 60.0
TEXTS = ["one two three", "four five", "six", "seven eight nine ten", "eleven", "a b", "c", "d e"]
STEP_TEXT = re.compile(r"text (\d+)/(\d+)")


def readme_worker_code() -> str:
    """The first ``python`` block of the README's "Write your own worker" section."""
    text = README.read_text()
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    match = CODE_BLOCK.search(text[start : end if end != -1 else len(text)])
    assert match is not None, f"no python block under {SECTION!r} in README.md"
    return match[1]


def test_the_readme_section_has_a_complete_worker_script() -> None:
    code = readme_worker_code()

    compile(code, "my_worker.py", "exec")
    assert '@worker.handler("wordcount")' in code
    for used in ("ctx.checkpoint_data", "ctx.progress(", "ctx.checkpoint(", "worker.run()"):
        assert used in code


async def call(server: LiveServer, method: str, path: str, json: Any = None) -> Any:
    status, body = await server.rest(method, path, token=server.token(USER), json=json)
    assert status in (200, 201), (status, body)
    return body


async def test_the_readme_worker_runs_pauses_resumes_fails_and_stops(
    start_server: StartServer, tmp_path: Path
) -> None:
    server = await start_server()
    script = tmp_path / "my_worker.py"
    script.write_text(readme_worker_code())
    user = await connect_user(server, USER)
    env = {
        "JOBSPINE_URL": server.url,
        "JOBSPINE_TOKEN": server.token("my-worker", "worker"),
        "WORKER_HEARTBEAT_S": "0.1",  # so that a pause request arrives within a step
    }
    worker = await spawn("my_worker.py", [str(script)], env)
    try:
        job = await call(
            server, "POST", "/api/jobs", {"type": "wordcount", "input": {"texts": TEXTS}}
        )
        job_id = job["id"]
        await user.events.wait_for_job_event(job_id, "job:checkpoint", within=WAIT_S)
        await call(server, "POST", f"/api/jobs/{job_id}/pause")
        paused = await user.events.wait_for_job_event(job_id, "job:paused", within=WAIT_S)
        saved = await call(server, "GET", f"/api/jobs/{job_id}/checkpoint")
        await call(server, "POST", f"/api/jobs/{job_id}/resume")
        completed = await user.events.wait_for_job_event(job_id, "job:completed", within=WAIT_S)

        bad = await call(server, "POST", "/api/jobs", {"type": "wordcount", "input": {"texts": 5}})
        failed = await user.events.wait_for_job_event(bad["id"], "job:failed", within=WAIT_S)

        worker.kill(signal.SIGTERM)
        assert await worker.wait(WAIT_S) == 0
    finally:
        await stop(worker)

    done = saved["data"]["done"]
    assert 1 <= done < len(TEXTS)
    assert saved["data"]["words"] == sum(len(text.split()) for text in TEXTS[:done])
    assert paused["data"]["reason"] == "user"
    events = user.events.of_job(job_id)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    starts = [e for e in events if e["type"] == "job:started"]
    assert [e["data"]["resumed"] for e in starts] == [False, True]
    # the second attempt went on after the checkpoint
    assert step_numbers([e for e in events if e["seq"] > starts[1]["seq"]], STEP_TEXT) == list(
        range(done + 1, len(TEXTS) + 1)
    )
    words = sum(len(text.split()) for text in TEXTS)
    assert completed["data"]["result"] == {"texts": len(TEXTS), "words": words}
    assert failed["data"]["error"]["message"] == "input.texts must be a list of strings"
