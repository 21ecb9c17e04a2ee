"""One run of the peer workload against one target, with its processes and CPU counters.

A run starts the target's server side (a jobspine web process on the memory store or on a
scratch Postgres database; a private ``redis-server`` or a scratch database for saq), its
worker process and its client process, waits until both say they are ready, reads every
process's CPU time, tells the client to go, reads its summary and the CPU times again.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import attrs

from scripts.benchsuite.peer import profiling
from scripts.benchsuite.servers import jobspine
from tests.support.databases import base_dsn, scratch_database
from tests.support.processes import ROOT, Proc, RedisServer, cpu_seconds, free_port, spawn, stop

#: saq's own virtualenv (gitignored), made by :func:`ensure_saq`.
SAQ_VENV = ROOT / ".bench-venv"
SAQ_REQUIREMENT = "saq[redis,postgres]==0.26.4"
READY_WITHIN_S = 60.0
#: Bound on one run of the workload, end to end.
RUN_WITHIN_S = 600.0

TARGETS = ("jobspine-memory", "saq-redis", "jobspine-postgres", "saq-postgres")
#: The saq backend each jobspine store is compared with.
MATCHING = {"jobspine-memory": "saq-redis", "jobspine-postgres": "saq-postgres"}


@attrs.frozen(kw_only=True)
class Workload:
    jobs: int
    reports: int
    checkpoints: int
    concurrency: int
    poll_s: float

    @classmethod
    def of(cls, options: argparse.Namespace) -> Workload:
        """The workload of ``scripts/bench peer``'s options (of the same names)."""
        return cls(**{field.name: getattr(options, field.name) for field in attrs.fields(cls)})

    def params(self) -> dict[str, Any]:
        """The ``params`` of each result line."""
        return attrs.asdict(self)

    def args(self) -> list[str]:
        return [
            "--jobs", str(self.jobs),
            "--reports", str(self.reports),
            "--checkpoints", str(self.checkpoints),
            "--concurrency", str(self.concurrency),
            "--poll", str(self.poll_s),
        ]  # fmt: skip


def ensure_saq() -> str:
    """The Python of saq's virtualenv, created and filled from PyPI on first use."""
    python = SAQ_VENV / "bin" / "python"
    check = [str(python), "-c", "import saq, psycopg, psycopg_pool, redis"]
    if python.exists() and _quiet(check) == 0:
        return str(python)
    print(f"installing {SAQ_REQUIREMENT} into {SAQ_VENV} (once)", file=sys.stderr)
    base = shutil.which("python3") or sys.executable
    if _quiet([base, "-m", "venv", str(SAQ_VENV)]) != 0:
        raise SystemExit(f"cannot create {SAQ_VENV}")
    pip = [str(python), "-m", "pip", "install", "-q", SAQ_REQUIREMENT]
    if _quiet(pip) != 0 or _quiet(check) != 0:
        raise SystemExit(f"cannot install {SAQ_REQUIREMENT} (it needs PyPI): {' '.join(pip)}")
    return str(python)


def _quiet(command: list[str]) -> int:
    import subprocess

    return subprocess.run(command, capture_output=True, check=False).returncode


async def backend_cpu(database: str) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend connected to ``database``."""
    conn = await asyncpg.connect(base_dsn())
    try:
        rows = await conn.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1", database)
    finally:
        await conn.close()
    found = {}
    for row in rows:
        with contextlib.suppress(OSError):
            found[row["pid"]] = cpu_seconds(row["pid"])
    return found


@attrs.define
class Sides:
    """How to read the CPU time of a run's server side, and the children to read."""

    server_pids: list[int]
    database: str | None
    worker: Proc
    client: Proc

    async def snapshot(self) -> dict[str, Any]:
        return {
            "server": sum(cpu_seconds(pid) for pid in self.server_pids),
            "backends": await backend_cpu(self.database) if self.database else {},
            "worker": self.worker.cpu_seconds(),
            "client": self.client.cpu_seconds(),
        }


def cpu_between(before: dict[str, Any], after: dict[str, Any]) -> dict[str, float]:
    backends = sum(cpu - before["backends"].get(pid, 0.0) for pid, cpu in after["backends"].items())
    return {
        "process": after["server"] - before["server"],
        "postgres": backends,
        "worker": after["worker"] - before["worker"],
        "client": after["client"] - before["client"],
    }


async def read_line(proc: Proc, within: float) -> dict[str, Any]:
    """The next JSON line ``proc`` prints; raises with its stderr when it dies first."""
    assert proc.process.stdout is not None
    while True:
        try:
            raw = await asyncio.wait_for(proc.process.stdout.readline(), within)
        except TimeoutError:
            tail = proc.output()[-3000:]
            raise RuntimeError(f"{proc.name}: no answer in {within:g} s:\n{tail}") from None
        if not raw:
            raise RuntimeError(f"{proc.name} exited:\n{proc.output()[-3000:]}")
        text = raw.decode(errors="replace").strip()
        if text.startswith("{"):
            value: dict[str, Any] = json.loads(text)
            return value


@contextlib.asynccontextmanager
async def child(name: str, python: str, module: str, args: list[str]) -> AsyncIterator[Proc]:
    proc = await spawn(name, ["-m", module, *args], {}, python=python, piped=True)
    try:
        await read_line(proc, READY_WITHIN_S)  # {"ready": true}
        yield proc
    finally:
        await stop(proc, show_output=False)


@contextlib.asynccontextmanager
async def server_side(
    target: str, limit: int | None
) -> AsyncIterator[tuple[str, list[int], str | None]]:
    """The target's server: (the URL the worker and client use, pids, database name)."""
    if target == "saq-redis":
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit(
                "saq-redis needs redis-server (scripts/ensure_services.sh installs it)"
            )
        redis = RedisServer(binary, free_port())
        await redis.start()
        try:
            yield redis.url, [redis.pid], None
        finally:
            await redis.stop()
        return
    async with contextlib.AsyncExitStack() as stack:
        dsn = None
        if target != "jobspine-memory":
            dsn = await stack.enter_async_context(scratch_database("bench_peer"))
        database = None if dsn is None else dsn.rsplit("/", 1)[1]
        if target == "saq-postgres":
            assert dsn is not None
            yield dsn, [], database
            return
        env = {"PROGRESS_EVENTS_PER_S": str(limit or 0)}
        web = await stack.enter_async_context(jobspine(f"peer-{target}", database_url=dsn, **env))
        yield web.url, [web.pid], database


async def run_once(
    target: str,
    limit: int | None,
    workload: Workload,
    *,
    tag: str,
    saq_python: str | None,
    profile: Path | None = None,
) -> dict[str, Any]:
    """One run; its numbers (CPU in ms per job) and the client's checks. With ``profile``
    (a file), py-spy records jobspine's web process meanwhile, and the run's statements are
    read from ``pg_stat_statements`` (where the cluster has it: :mod:`.profiling`)."""
    saq = target.startswith("saq")
    python = (saq_python or "") if saq else sys.executable
    module = "scripts.benchsuite.peer." + ("saq_side" if saq else "jobspine_side")
    tagged = ["--tag", tag] if saq else []
    async with contextlib.AsyncExitStack() as stack:
        url, pids, database = await stack.enter_async_context(server_side(target, limit))
        worker = await stack.enter_async_context(
            child(f"peer-worker-{target}", python, module, ["worker", url, *workload.args()])
        )
        client = await stack.enter_async_context(
            child(
                f"peer-client-{target}", python, module, ["client", url, *workload.args(), *tagged]
            )
        )
        sides = Sides(server_pids=pids, database=database, worker=worker, client=client)
        spying = profile is not None and not saq
        if profile is not None and database:
            await profiling.reset_statements()
        before = await sides.snapshot()
        async with (
            profiling.py_spy(pids[0], profile) if spying else contextlib.nullcontext()  # type: ignore[arg-type]
        ):
            assert client.process.stdin is not None
            client.process.stdin.write(b"go\n")
            await client.process.stdin.drain()
            summary = await read_line(client, RUN_WITHIN_S)
            after = await sides.snapshot()
        if profile is not None and database:
            summary["statements"] = await profiling.top_statements(database)
            calls = await profiling.statement_calls(database)
            summary["statements_per_job"] = round(calls / workload.jobs, 1)
    cpu = cpu_between(before, after)
    jobs = workload.jobs
    server = cpu["process"] + cpu["postgres"]
    every = server + cpu["worker"] + cpu["client"]
    return {
        **summary,
        "server_cpu_ms_per_job": round(1000 * server / jobs, 2),
        "web_cpu_ms_per_job": round(1000 * cpu["process"] / jobs, 2) if not saq else None,
        "postgres_cpu_ms_per_job": round(1000 * cpu["postgres"] / jobs, 2) if database else None,
        "worker_cpu_ms_per_job": round(1000 * cpu["worker"] / jobs, 2),
        "client_cpu_ms_per_job": round(1000 * cpu["client"] / jobs, 2),
        "all_cpu_ms_per_job": round(1000 * every / jobs, 2),
    }


__all__ = ["MATCHING", "TARGETS", "Workload", "ensure_saq", "run_once"]
