"""One job's JSON log lines across real web and worker processes, found by its
correlation_id (the creating request's id), and no secret in any line: not the token, not
the lease, not a value from the checkpoint."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import aiohttp
import pytest

from tests.support.processes import token, web_process, worker_process
from workers.testing import wait_until

pytestmark = pytest.mark.slow

WAIT_S = 30.0
USER = "log-user"
JSON_ENV = {"LOG_FORMAT": "json", "LOG_LEVEL": "DEBUG"}
JWT_SHAPE = re.compile(r"eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.")
#: ``secrets.token_urlsafe(18)``: how the server makes leases.
LEASE_SHAPE = re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{24}(?![A-Za-z0-9_-])")


def _lines(output: str) -> list[dict[str, Any]]:
    """Every line is one JSON object (the test harness's own headers aside)."""
    lines = []
    for raw in output.splitlines():
        if not raw.strip():
            continue
        data = json.loads(raw)
        assert isinstance(data, dict), raw
        assert {"ts", "level", "logger", "msg"} <= data.keys(), raw
        lines.append(data)
    return lines


async def test_one_jobs_lines_across_web_and_worker_by_correlation_id() -> None:
    rid = f"trace-{uuid.uuid4().hex[:12]}"
    user_token = token(USER)
    headers = {"Authorization": f"Bearer {user_token}"}
    async with (
        web_process(**JSON_ENV) as web,
        worker_process(
            web.url, "log-worker", WORKER_TYPES="research", WORKER_HEARTBEAT_S="0.2", **JSON_ENV
        ) as worker,
        aiohttp.ClientSession(headers=headers) as http,
    ):
        body = {"type": "research", "input": {"query": "q", "steps": 3, "step_seconds": 0.2}}
        async with http.post(
            f"{web.url}/api/jobs", json=body, headers={"X-Request-ID": rid}
        ) as answer:
            assert answer.status == 201, await answer.text()
            assert answer.headers["X-Request-ID"] == rid
            job = await answer.json()
        job_id = job["id"]
        assert job["correlation_id"] == rid

        saved: dict[str, Any] = {}

        async def checkpoint() -> bool:
            async with http.get(f"{web.url}/api/jobs/{job_id}/checkpoint") as got:
                if got.status == 200:
                    saved.update((await got.json())["data"])
            return bool(saved)

        await wait_until(checkpoint, within_s=WAIT_S, what="a checkpoint")

        async def completed() -> bool:
            async with http.get(f"{web.url}/api/jobs/{job_id}") as got:
                return bool((await got.json())["state"] == "completed")

        await wait_until(completed, within_s=WAIT_S, what="the job completed")
        await wait_until(
            lambda: ": completed" in worker.output(), within_s=WAIT_S, what="the worker's line"
        )
        web_output, worker_output = web.proc.output(), worker.output()

    web_lines, worker_lines = _lines(web_output), _lines(worker_output)
    for name, lines in (("web", web_lines), ("worker", worker_lines)):
        mine = [line for line in lines if line.get("correlation_id") == rid]
        assert mine, f"no {name} line with correlation_id {rid}"
        assert all(line["job_id"] == job_id for line in mine), mine
        about_job = [line for line in lines if line.get("job_id") == job_id]
        assert all(line.get("correlation_id") == rid for line in about_job), about_job
    assert any(line.get("request_id") == rid for line in web_lines)
    assert any("completed" in line["msg"] for line in worker_lines if line.get("job_id"))
    assert all(line.get("worker_id") for line in worker_lines if line.get("job_id"))

    everything = web_output + worker_output
    assert user_token.split(".")[2] not in everything  # a token's signature
    assert not JWT_SHAPE.search(everything), "a token reached the logs"
    assert saved["seed"] not in everything, "a checkpoint value reached the logs"
    for line in web_lines + worker_lines:
        for value in line.values():
            assert not LEASE_SHAPE.search(str(value)), f"a lease-shaped value: {line}"
