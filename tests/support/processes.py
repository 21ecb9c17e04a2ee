"""Real processes for end-to-end tests: the `web` and `worker` commands of the Procfile.

Each child writes its combined output to a temporary file. When a child stops (or is found
dead), its output is printed under a header, so pytest shows it with a failing test (and
hides it otherwise). No child outlives its block: :func:`stop` ends it with SIGTERM, then
SIGKILL; and on Linux each child also gets SIGKILL from the kernel when the test process
dies (``PR_SET_PDEATHSIG``), e.g. when pytest-timeout ends a hanging session.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import IO, Any

import aiohttp
import attrs
import socketio

from server.auth import mint_token
from tests.support.server import TIMEOUT_S, UNLIMITED_CALLS, EventRecorder, SocketClient

ROOT = Path(__file__).resolve().parents[2]
SECRET = "e2e-secret-" + "x" * 32
#: ``prctl(2)`` option: the signal a child gets when its parent dies.
PR_SET_PDEATHSIG = 1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def token(sub: str, role: str = "user") -> str:
    return mint_token(SECRET, sub=sub, role=role, ttl_s=3600)


def _die_with_parent() -> None:
    """In the child before exec: be killed when the test process dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _child_setup() -> Callable[[], None] | None:
    return _die_with_parent if sys.platform.startswith("linux") else None


@attrs.define
class Proc:
    """A child process whose combined output goes to a temporary file, for failure reports."""

    name: str
    process: asyncio.subprocess.Process
    log: IO[bytes]

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    def output(self) -> str:
        """Everything the process wrote so far (stdout and stderr, interleaved)."""
        if not self.log.closed:
            self.log.flush()
        return Path(self.log.name).read_text(errors="replace")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process.returncode is None:
            self.process.send_signal(sig)

    async def wait(self, within: float = 15.0) -> int:
        return await asyncio.wait_for(self.process.wait(), within)

    def discard_log(self) -> str:
        """Close and remove the log file; returns what it held."""
        output = self.output()
        _discard(self.log)
        return output


def _discard(log: IO[bytes]) -> None:
    log.close()
    Path(log.name).unlink(missing_ok=True)


async def spawn(name: str, args: list[str], env: Mapping[str, str]) -> Proc:
    """``python <args>`` in the repository root with ``env`` on top of ours."""
    log = tempfile.NamedTemporaryFile(prefix=f"jobspine-{name}-", suffix=".log", delete=False)  # noqa: SIM115
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **env}
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            *args,
            cwd=ROOT,
            env=full_env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            preexec_fn=_child_setup(),
        )
    except BaseException:
        _discard(log)
        raise
    return Proc(name=name, process=process, log=log)


async def stop(proc: Proc) -> None:
    """SIGTERM, then SIGKILL after a grace period; never leaves a child behind. Prints the
    child's output (shown by pytest when the test fails) and removes its log file."""
    try:
        if proc.process.returncode is None:
            proc.kill(signal.SIGTERM)
            try:
                await proc.wait(10)
            except TimeoutError:
                proc.kill(signal.SIGKILL)
                await proc.wait(10)
    finally:
        if proc.process.returncode is None:  # cancelled while waiting: still no orphan
            proc.kill(signal.SIGKILL)
        output = proc.discard_log()
        print(
            f"----- {proc.name} (pid {proc.pid}, exit status {proc.returncode}) -----\n"
            f"{output}----- end of {proc.name} -----"
        )


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
    """``python -m server`` on a free port (or ``env``'s ``PORT``: a test that restarts the
    server passes the first one's) with the test secret and ``env``, once ready."""
    port = int(env.pop("PORT")) if "PORT" in env else free_port()
    settings = {
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "JWT_SECRET": SECRET,
        **UNLIMITED_CALLS,
        **env,
    }
    proc = await spawn(name, ["-m", "server"], settings)
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_ready(url, proc)
        yield WebProcess(proc=proc, url=url)
    finally:
        await stop(proc)


@contextlib.asynccontextmanager
async def worker_process(url: str, name: str = "worker", **env: str) -> AsyncIterator[Proc]:
    """``python -m workers`` against ``url`` with a worker token (sub ``name``) and ``env``
    (``WORKER_HEARTBEAT_S``, ``WORKER_TYPES``, …)."""
    settings = {"JOBSPINE_URL": url, "JOBSPINE_TOKEN": token(name, "worker"), **env}
    proc = await spawn(name, ["-m", "workers"], settings)
    try:
        yield proc
    finally:
        await stop(proc)


@contextlib.asynccontextmanager
async def connected(url: str, namespace: str, bearer: str) -> AsyncIterator[SocketClient]:
    """A client of ``namespace`` at ``url`` with token ``bearer``, recording every event."""
    sio = socketio.AsyncClient(reconnection=False)
    recorder = EventRecorder()

    async def any_event(event: str, *args: Any) -> None:
        await recorder.record(event, args[0] if len(args) == 1 else list(args))

    sio.on("*", any_event, namespace=namespace)
    await sio.connect(url, auth={"token": bearer}, namespaces=[namespace], wait_timeout=TIMEOUT_S)
    try:
        yield SocketClient(sio=sio, namespace=namespace, events=recorder)
    finally:
        await sio.disconnect()
