"""Real processes, shared by the tests and the benchmarks (``scripts/bench``) by design.

The one process harness of the repository: the `web` and `worker` commands of the Procfile,
any other ``python -m …`` server that answers ``GET /readyz`` (the benches' raw baseline),
and a private ``redis-server``. It imports neither pytest nor a test module, so that the
benchmarks can use it as they are.

Each Python child writes its combined output to a temporary file. When a child stops (or is
found dead), its output is printed under a header, so pytest shows it with a failing test
(and hides it otherwise); a bench passes ``show_output=False``. No child outlives its block:
:func:`stop` ends it with SIGTERM, then SIGKILL; and on Linux each child also gets SIGKILL
from the kernel when its parent dies (``PR_SET_PDEATHSIG``), e.g. when pytest-timeout ends a
hanging session.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import IO

import aiohttp
import attrs

from server.auth import mint_token

ROOT = Path(__file__).resolve().parents[2]
SECRET = "e2e-secret-" + "x" * 32
#: ``prctl(2)`` option: the signal a child gets when its parent dies.
PR_SET_PDEATHSIG = 1
#: Call rates no functional test or bench reaches; the abuse tests (tests/test_abuse_*.py)
#: set the contract's defaults or lower ones.
UNLIMITED_CALLS = {
    "USER_CALLS_PER_S": "1000000",
    "WORKER_CALLS_PER_S": "1000000",
    "MAX_SOCKETS_PER_USER": "100000",
}
#: How long a starting child may take to become ready.
READY_WITHIN_S = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def token(sub: str, role: str = "user", *, ttl_s: float = 3600) -> str:
    return mint_token(SECRET, sub=sub, role=role, ttl_s=ttl_s)


def _die_with_parent() -> None:
    """In the child before exec: be killed when the parent process dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _child_setup() -> Callable[[], None] | None:
    return _die_with_parent if sys.platform.startswith("linux") else None


def cpu_seconds(pid: int) -> float:
    """User + system CPU time process ``pid`` has used so far (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    """Resident memory of process ``pid`` now (``/proc/<pid>/status``, VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


class _Sampled:
    """The CPU time and resident memory of the process ``pid`` names, read when asked."""

    __slots__ = ()
    pid: int

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def rss_bytes(self) -> int:
        return rss_bytes(self.pid)


@attrs.define
class Proc(_Sampled):
    """A child process whose combined output goes to a temporary file, for failure reports."""

    name: str
    process: asyncio.subprocess.Process
    log: IO[bytes]
    pid: int = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.pid = self.process.pid

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


async def spawn(
    name: str,
    args: list[str],
    env: Mapping[str, str],
    *,
    cwd: Path = ROOT,
    python: str = sys.executable,
    piped: bool = False,
) -> Proc:
    """``python <args>`` in ``cwd`` (the repository root) with ``env`` on top of ours. With
    ``piped``, its stdin and stdout are pipes (``proc.process.stdin``/``stdout``: a bench
    talks to its children in lines) and only stderr goes to the log."""
    log = tempfile.NamedTemporaryFile(prefix=f"jobspine-{name}-", suffix=".log", delete=False)  # noqa: SIM115
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **env}
    try:
        process = await asyncio.create_subprocess_exec(
            python,
            *args,
            cwd=cwd,
            env=full_env,
            stdin=asyncio.subprocess.PIPE if piped else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE if piped else log,
            stderr=log if piped else asyncio.subprocess.STDOUT,
            preexec_fn=_child_setup(),
        )
    except BaseException:
        _discard(log)
        raise
    return Proc(name=name, process=process, log=log)


async def stop(proc: Proc, *, show_output: bool = True) -> None:
    """SIGTERM, then SIGKILL after a grace period; never leaves a child behind. Prints the
    child's output (shown by pytest when the test fails) unless ``show_output`` is false,
    and removes its log file."""
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
        if show_output:
            print(
                f"----- {proc.name} (pid {proc.pid}, exit status {proc.returncode}) -----\n"
                f"{output}----- end of {proc.name} -----"
            )


@attrs.define
class WebProcess(_Sampled):
    """A running HTTP server process (``python -m server`` or another) and its URL."""

    proc: Proc
    url: str
    name: str = attrs.field(init=False)
    pid: int = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.name, self.pid = self.proc.name, self.proc.pid


async def wait_ready(url: str, proc: Proc, *, within: float = READY_WITHIN_S) -> None:
    """Until ``GET {url}/readyz`` answers 200; raises when the process exits first or
    ``within`` seconds pass."""
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as http:
        while True:
            if proc.process.returncode is not None:
                raise RuntimeError(f"{proc.name} exited early:\n{proc.output()[-4000:]}")
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(f"{url}/readyz") as response:
                    if response.status == 200:
                        return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{proc.name} not ready within {within:g} s:\n{proc.output()[-4000:]}"
                )
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def http_process(
    name: str,
    args: list[str],
    env: Mapping[str, str],
    *,
    cwd: Path = ROOT,
    show_output: bool = True,
    within: float = READY_WITHIN_S,
) -> AsyncIterator[WebProcess]:
    """``python <args> --port P`` with ``HOST``/``PORT`` set to a free loopback port (or
    ``env``'s ``PORT``: a test that restarts the server passes the first one's), once its
    ``/readyz`` answers; stopped on the way out."""
    port = int(env["PORT"]) if "PORT" in env else free_port()
    settings = {"HOST": "127.0.0.1", **env, "PORT": str(port)}
    proc = await spawn(name, [*args, "--port", str(port)], settings, cwd=cwd)
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_ready(url, proc, within=within)
        yield WebProcess(proc=proc, url=url)
    finally:
        await stop(proc, show_output=show_output)


#: What every ``python -m server`` of the harness runs with, under its own settings.
WEB_DEFAULTS = {"JWT_SECRET": SECRET, **UNLIMITED_CALLS}


def web_process(name: str = "web", **env: str) -> AbstractAsyncContextManager[WebProcess]:
    """``python -m server`` on a free port (or ``env``'s ``PORT``) with the shared secret, no
    call limits and ``env``, once ready."""
    return http_process(name, ["-m", "server"], {**WEB_DEFAULTS, **env})


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


def answers_ping(host: str, port: int, *, timeout_s: float = 1.0) -> bool:
    """Whether a Redis server at ``host:port`` answers ``PING`` (plain RESP, no client)."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """A private ``redis-server`` on a fixed port: no persistence, stoppable, restartable."""

    def __init__(self, binary: str, port: int, *, within: float = 10.0) -> None:
        self._binary = binary
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self._within = within
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError("redis-server is not running")
        return self._process.pid

    async def start(self) -> None:
        """Start it and wait until it answers (the port is its own again after a stop);
        raises RuntimeError when it does not."""
        self._process = subprocess.Popen(  # noqa: ASYNC220 (returns at once)
            [
                self._binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--loglevel",
                "warning",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd="/",
            preexec_fn=_child_setup(),  # killed with its parent, never left behind
        )
        deadline = time.monotonic() + self._within
        while not await asyncio.to_thread(answers_ping, "127.0.0.1", self.port):
            if self._process.poll() is not None or time.monotonic() > deadline:
                await self.stop()
                raise RuntimeError(f"redis-server on port {self.port} did not start")
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        """Stop it (SIGTERM, then SIGKILL) and wait until it is gone."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            await asyncio.to_thread(process.wait, 10)
        except subprocess.TimeoutExpired:
            process.kill()
            await asyncio.to_thread(process.wait, 10)
