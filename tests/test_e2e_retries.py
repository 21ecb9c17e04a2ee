"""End to end with real processes (``python -m server`` and an SDK worker process): a handler
that fails with RetryableError twice and then succeeds, and one that exceeds ``timeout_s`` and
is retried from its checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp

from tests.support.jobs import wait_until
from tests.support.processes import spawn, stop, token, web_process

WORKER_SCRIPT = """
import asyncio, os, signal
from workers import JobContext, RetryableError, Worker, WorkerConfig

worker = Worker(WorkerConfig(url=os.environ["JOBSPINE_URL"], token=os.environ["JOBSPINE_TOKEN"],
                             heartbeat_interval_s=0.2, poll_interval_s=0.2))

@worker.handler("flaky")
async def flaky(ctx: JobContext):
    if ctx.retries < 2:
        raise RetryableError(f"try {ctx.retries + 1} failed", code="flaky")
    return {"tries": ctx.retries + 1}

@worker.handler("slow")
async def slow(ctx: JobContext):
    if ctx.checkpoint_data is None:
        await ctx.checkpoint({"step": 1}, progress=50)
        await asyncio.sleep(30)  # far past timeout_s: the supervisor times it out
    return {"resumed_from": ctx.checkpoint_data, "retries": ctx.retries}

async def main():
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, worker.stop)
    await worker.run()

asyncio.run(main())
"""


async def test_retryable_failures_and_a_timeout_are_retried_by_the_server(
    tmp_path: Path,
) -> None:
    script = tmp_path / "retry_worker.py"
    script.write_text(WORKER_SCRIPT)
    async with web_process(SUPERVISOR_INTERVAL_S="0.1") as web:
        env = {"JOBSPINE_URL": web.url, "JOBSPINE_TOKEN": token("w1", "worker")}
        worker = await spawn("retry-worker", [str(script)], env)
        headers = {"Authorization": f"Bearer {token('alice')}"}
        try:
            async with aiohttp.ClientSession(headers=headers) as http:

                async def create(body: dict[str, Any]) -> str:
                    async with http.post(f"{web.url}/api/jobs", json=body) as answer:
                        assert answer.status == 201, await answer.text()
                        job_id: str = (await answer.json())["id"]
                        return job_id

                async def final(job_id: str) -> dict[str, Any] | None:
                    async with http.get(f"{web.url}/api/jobs/{job_id}") as answer:
                        job: dict[str, Any] = await answer.json()
                    return job if job["state"] in ("completed", "failed") else None

                retry = {"max_attempts": 3, "backoff_s": 0.1}
                flaky = await create({"type": "flaky", "retry": retry})
                slow = await create({"type": "slow", "timeout_s": 1, "retry": retry})
                flaky_done = await wait_until(lambda: final(flaky), within=30)
                slow_done = await wait_until(lambda: final(slow), within=30)
        finally:
            await stop(worker)
    assert flaky_done["state"] == "completed", flaky_done
    assert flaky_done["result"] == {"tries": 3}
    assert flaky_done["retries"] == 2
    assert slow_done["state"] == "completed", slow_done
    assert slow_done["result"] == {"resumed_from": {"step": 1}, "retries": 1}
