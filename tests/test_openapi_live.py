"""Schemathesis against a live web process (both stores): every answer to generated requests
matches docs/openapi.json, none is a 5xx, and no traceback reaches a body or the server's log.

The examples per operation are bounded (:data:`EXAMPLES`) and derandomized, so the run is
the same each time and stays well under a minute.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks

from server.rest.openapi import render_document
from tests.support.postgres import _fresh_database_fixture
from tests.support.processes import ROOT, SECRET, free_port, token

pytestmark = pytest.mark.slow

EXAMPLES = 25
#: Request ids sent back unchanged; anything else is replaced (tracking.py).
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]


@attrs.frozen
class LiveWeb:
    url: str
    log: Path
    process: subprocess.Popen[bytes]

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def _wait_ready(web: LiveWeb, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while True:
        if web.process.poll() is not None:
            raise AssertionError(f"web exited early:\n{web.output()}")
        try:
            with urllib.request.urlopen(f"{web.url}/readyz", timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"web not ready within {within}s:\n{web.output()}")
        time.sleep(0.05)


def _start(env: dict[str, str]) -> Iterator[LiveWeb]:
    port = free_port()
    with tempfile.NamedTemporaryFile(prefix="jobspine-openapi-", suffix=".log") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "server"],
            cwd=ROOT,
            env={
                **os.environ,
                "PYTHONUNBUFFERED": "1",
                "HOST": "127.0.0.1",
                "PORT": str(port),
                "JWT_SECRET": SECRET,
                "ACCESS_LOG": "0",
                **env,
            },
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        web = LiveWeb(url=f"http://127.0.0.1:{port}", log=Path(log.name), process=process)
        try:
            _wait_ready(web)
            yield web
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
            print(f"----- web -----\n{web.output()}----- end of web -----")


@pytest.fixture(
    scope="module", params=["memory", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def live_web(request: pytest.FixtureRequest) -> Iterator[LiveWeb]:
    if request.param == "memory":
        yield from _start({})
        return
    template: str = request.getfixturevalue("postgres_template")
    for dsn in _fresh_database_fixture(template):
        yield from _start({"DATABASE_URL": dsn})


schema = schemathesis.openapi.from_dict(json.loads(render_document()))


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_every_answer_matches_the_document(case: schemathesis.Case[Any], live_web: LiveWeb) -> None:
    headers = dict(case.headers or {})
    headers["Authorization"] = f"Bearer {token('root', 'admin')}"
    response = case.call(base_url=live_web.url, headers=headers)
    case.validate_response(response, checks=CHECKS)
    assert "Traceback" not in response.text
    assert "Traceback" not in live_web.output()
