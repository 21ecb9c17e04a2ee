"""The servers under test, as child processes: jobspine (``python -m server``) and the raw
baseline (``python -m scripts.benchsuite.raw_server``), each on a free loopback port."""

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
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import aiohttp
import attrs

ROOT = Path(__file__).resolve().parents[2]
SECRET = "jobspine-bench-secret-0123456789-abcdefghijkl"
READY_WITHIN_S = 60.0
#: Where ``python -m server`` runs from: another checkout (say, a ``git worktree`` of an
#: older commit) measures that version's server against the same load and baseline.
SERVER_ROOT_ENV = "JOBSPINE_BENCH_SERVER_ROOT"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@attrs.define
class Server:
    """A running server process: its URL and pid (for its memory)."""

    name: str
    url: str
    process: asyncio.subprocess.Process
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss_bytes(self) -> int:
        """Resident memory now, from ``/proc/<pid>/status`` (VmRSS)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError(f"no VmRSS for pid {self.pid}")

    def cpu_seconds(self) -> float:
        """User + system CPU time the process has used so far (``/proc/<pid>/stat``)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


async def _wait_ready(server: Server) -> None:
    deadline = time.monotonic() + READY_WITHIN_S
    async with aiohttp.ClientSession() as http:
        while True:
            if server.process.returncode is not None:
                raise RuntimeError(f"{server.name} exited early:\n{server.output()[-4000:]}")
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(f"{server.url}/readyz") as response:
                    if response.status == 200:
                        return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{server.name} not ready in {READY_WITHIN_S:g} s")
            await asyncio.sleep(0.05)


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 15)
        except TimeoutError:
            process.kill()
            await process.wait()


@contextlib.asynccontextmanager
async def serve(
    name: str, args: list[str], env: Mapping[str, str], *, root: Path = ROOT
) -> AsyncIterator[Server]:
    port = free_port()
    log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed below
        prefix=f"jobspine-bench-{name}-", suffix=".log", delete=False
    )
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **env}
    full_env.update({"HOST": "127.0.0.1", "PORT": str(port)})
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        "--port",
        str(port),
        cwd=root,
        env=full_env,
        stdout=log,
        stderr=asyncio.subprocess.STDOUT,
    )
    server = Server(
        name=name, url=f"http://127.0.0.1:{port}", process=process, log_path=Path(log.name)
    )
    try:
        await _wait_ready(server)
        yield server
    finally:
        await _stop(process)
        log.close()
        os.unlink(log.name)


def jobspine(
    name: str, *, database_url: str | None = None, **env: str
) -> AbstractAsyncContextManager[Server]:
    """``python -m server`` with the bench secret; Postgres when ``database_url`` is given."""
    # No live progress limit: the bench measures how fast events can flow.
    settings = {
        "JWT_SECRET": SECRET,
        "PROGRESS_EVENTS_PER_S": "0",
        # The benches measure throughput, not the per-user limits (docs/security.md).
        "USER_CALLS_PER_S": "1000000",
        "WORKER_CALLS_PER_S": "1000000",
        "MAX_SOCKETS_PER_USER": "1000000",
        **env,
    }
    if database_url is not None:
        settings["DATABASE_URL"] = database_url
    root = Path(os.environ.get(SERVER_ROOT_ENV) or ROOT).resolve()
    if root != ROOT:
        settings["PYTHONPATH"] = os.pathsep.join((str(root), str(root / "packages" / "shared")))
    return serve(name, ["-m", "server"], settings, root=root)


def raw(name: str = "raw") -> AbstractAsyncContextManager[Server]:
    return serve(name, ["-m", "scripts.benchsuite.raw_server"], {})
