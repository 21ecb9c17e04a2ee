"""Real processes for end-to-end tests: the `web` and `worker` commands of the Procfile."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import IO

import aiohttp
import attrs

from server.auth import mint_token

ROOT = Path(__file__).resolve().parents[2]
SECRET = "e2e-secret-" + "x" * 32


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def token(sub: str, role: str = "user") -> str:
    return mint_token(SECRET, sub=sub, role=role, ttl_s=3600)


@attrs.define
class Proc:
    """A child process whose combined output goes to a temporary file, for failure reports."""

    name: str
    process: asyncio.subprocess.Process
    log: IO[bytes]

    def output(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process.returncode is None:
            self.process.send_signal(sig)

    async def wait(self, within: float = 15.0) -> int:
        return await asyncio.wait_for(self.process.wait(), within)


async def spawn(name: str, args: list[str], env: Mapping[str, str]) -> Proc:
    log = tempfile.NamedTemporaryFile(prefix=f"jobspine-{name}-", suffix=".log", delete=False)  # noqa: SIM115
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **env}
    process = await asyncio.create_subprocess_exec(
        sys.executable, *args, cwd=ROOT, env=full_env, stdout=log, stderr=asyncio.subprocess.STDOUT
    )
    return Proc(name=name, process=process, log=log)


async def stop(proc: Proc) -> None:
    """SIGTERM, then SIGKILL after a grace period; never leaves a child behind."""
    if proc.process.returncode is None:
        proc.kill(signal.SIGTERM)
        try:
            await proc.wait(10)
        except TimeoutError:
            proc.kill(signal.SIGKILL)
            await proc.wait(5)
    proc.log.close()


@attrs.define
class WebProcess:
    proc: Proc
    url: str


async def wait_ready(url: str, proc: Proc, *, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as http:
        while True:
            if proc.process.returncode is not None:
                raise AssertionError(f"{proc.name} exited early:\n{proc.output()}")
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(f"{url}/readyz") as response:
                    if response.status == 200:
                        return
            if time.monotonic() > deadline:
                raise AssertionError(f"{proc.name} not ready within {within}s:\n{proc.output()}")
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def web_process(name: str = "web", **env: str) -> AsyncIterator[WebProcess]:
    """``python -m server`` on a free port with the test secret and ``env``."""
    port = free_port()
    settings = {"HOST": "127.0.0.1", "PORT": str(port), "JWT_SECRET": SECRET, **env}
    proc = await spawn(name, ["-m", "server"], settings)
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_ready(url, proc)
        yield WebProcess(proc=proc, url=url)
    finally:
        await stop(proc)


@contextlib.asynccontextmanager
async def worker_process(url: str, name: str = "worker", **env: str) -> AsyncIterator[Proc]:
    """``python -m workers`` against ``url`` with a worker token."""
    settings = {"JOBSPINE_URL": url, "JOBSPINE_TOKEN": token(name, "worker"), **env}
    proc = await spawn(name, ["-m", "workers"], settings)
    try:
        yield proc
    finally:
        await stop(proc)
